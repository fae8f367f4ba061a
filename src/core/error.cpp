#include "sdgen/error.h"

namespace sdgen {

void throw_internal(const char* cond, const char* file, int line, const std::string& m) {
  throw Error(ExitCode::kInternal,
              "internal error: " + m + " (" + cond + " failed at " + file + ":" + std::to_string(line) + ")");
}

}  // namespace sdgen
