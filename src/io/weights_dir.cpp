#include "io/weights_dir.h"

#include <filesystem>

namespace sdgen {

namespace {
std::string& fallback() {
  // The library target still defines the source tree for src/cli/options.cpp; until the program
  // sets the folder itself, that tree's weights/ is the fallback so that sd-gen finds its files
  // from any working directory.
#ifdef SDGEN_SOURCE_DIR
  static std::string dir = std::string(SDGEN_SOURCE_DIR) + "/weights";
#else
  static std::string dir;
#endif
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
