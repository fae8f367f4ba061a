#include "io/weights_dir.h"

#include <filesystem>

namespace sdgen {

namespace {
std::string& fallback() {
  static std::string dir;  // the program's (src/source_weights.cpp for this tree's)
  return dir;
}
}  // namespace

void set_weights_fallback_dir(const std::string& dir) { fallback() = dir; }
const std::string& weights_fallback_dir() { return fallback(); }

std::string find_weights_file(const std::vector<std::string>& names) {
  for (const std::string& dir : {std::string("weights"), fallback()}) {
    if (dir.empty()) continue;
    for (const std::string& name : names) {
      const std::string path = dir + "/" + name;
      if (std::filesystem::exists(path)) return path;
    }
  }
  return "";
}

}  // namespace sdgen
