// SIMT_REFUSE: a comma-separated list of knobs that make a library twin refuse what a real library
// may refuse on some GPU, driver or version, so that the backend's fallback paths run under the
// emulator (the refusal_* ctest entries of tests/simt/CMakeLists.txt run the op table and a
// pipeline golden once per knob). Read at every call, so a test can set it with setenv. The knobs
// are documented where they act (cublaslt_twin.cpp, cudnn_twin.cpp); an unknown one aborts, so a
// misspelt knob cannot make a refusal test pass without refusing anything.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace simt {

inline bool refused(const char* knob) {
  static const char* const kKnobs[] = {"lt-heuristic",   "cudnn-fusion",           "cudnn-bias-fusion-only",
                                       "cudnn-finalize", "cudnn-nondeterministic", "cudnn-workspace"};
  const char* env = std::getenv("SIMT_REFUSE");
  bool hit = false;
  for (const char* p = env; p && *p;) {
    const char* comma = std::strchr(p, ',');
    const std::string name = comma ? std::string(p, comma) : std::string(p);
    bool known = name.empty();
    for (const char* k : kKnobs) known = known || name == k;
    if (!known) {
      std::fprintf(stderr, "SIMT_REFUSE: unknown knob '%s'\n", name.c_str());
      std::abort();
    }
    hit = hit || name == knob;
    p = comma ? comma + 1 : nullptr;
  }
  return hit;
}

// The engine (global index) of the execution plan the cuDNN twin ran last; -1 before any.
int64_t cudnn_last_engine();

}  // namespace simt
