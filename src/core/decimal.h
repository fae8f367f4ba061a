// Numbers as sd-gen documents them: decimal only. std::strtof, std::stoi and CLI11's conversions
// also take hexadecimal ("0x10"), hexadecimal floats ("0x1p4"), "inf" and "nan", which a user who
// typed them did not mean as those values; every number from the command line, a LoRA spec or a
// prompt tag passes one of these first.
#pragma once
#include <string>

namespace sdgen {

// [+-]digits
inline bool is_decimal_integer(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// [+-](digits[.digits] | .digits)[(e|E)[+-]digits]
inline bool is_decimal_real(const std::string& s) {
  auto digits = [&](size_t& i) {
    const size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - from;
  };
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  size_t n = digits(i);
  if (i < s.size() && s[i] == '.') {
    ++i;
    n += digits(i);
  }
  if (n == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits(i) == 0) return false;
  }
  return i == s.size();
}

}  // namespace sdgen
