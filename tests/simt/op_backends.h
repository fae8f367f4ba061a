// The two backends the CUDA op tests compare, one of each per process: the CUDA backend (emulated
// in simt_tests, the GPU in cuda_ops_tests) and the plain CPU backend, the numeric truth.
#pragma once
#include <memory>

#include "backend/cuda/cuda_backend.h"
#include "sdgen/backend.h"

namespace sdgen::op_backends {

inline Backend& cuda_emu() {
  static std::unique_ptr<Backend> b = make_cuda_backend();
  return *b;
}

inline Backend& plain_cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(true);
  return *b;
}

}  // namespace sdgen::op_backends
