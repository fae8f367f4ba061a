// Linked into the programs built from this tree (sd-gen, the tests, the census and benchmarks), not
// into the library: their weights/ fallback is the source tree's, where weights/download_sd15.sh
// puts the files, so that they find them from any working directory (a build folder, ctest's).
#include "io/weights_dir.h"

namespace {
const bool kSourceWeights = (sdgen::set_weights_fallback_dir(std::string(SDGEN_SOURCE_DIR) + "/weights"), true);
}  // namespace
