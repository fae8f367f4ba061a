// SDGEN_CUDA_CHECK(call): runs a CUDA runtime call and turns a failure into an sdgen::Error
// (ExitCode::kRuntime) naming the call, the error, and where it was made. Usable from .cu files
// and from the CUDA backend's host code, real or emulated.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "sdgen/error.h"

namespace sdgen {
namespace cuda {
[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file,
                                          int line) {
  throw_runtime(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                ") in " + call + " at " + file + ":" + std::to_string(line));
}
}  // namespace cuda
}  // namespace sdgen

#define SDGEN_CUDA_CHECK(call)                                                  \
  do {                                                                          \
    cudaError_t sdgen_err_ = (call);                                            \
    if (sdgen_err_ != cudaSuccess)                                              \
      ::sdgen::cuda::throw_cuda_error(sdgen_err_, #call, __FILE__, __LINE__);   \
  } while (0)
