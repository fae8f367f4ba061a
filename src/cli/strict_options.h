// CLI11 checks that hold numeric options to decimal notation (core/decimal.h): CLI11's own
// conversion would take "0x10" as 16. A check runs on the text before the conversion.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "core/decimal.h"

namespace sdgen::cli {

inline CLI::Validator decimal_integer() {
  return CLI::Validator(
      [](std::string& s) { return is_decimal_integer(s) ? std::string() : "'" + s + "' is not a decimal integer"; },
      "INT");
}

inline CLI::Validator decimal_real() {
  return CLI::Validator(
      [](std::string& s) { return is_decimal_real(s) ? std::string() : "'" + s + "' is not a decimal number"; },
      "NUMBER");
}

}  // namespace sdgen::cli
