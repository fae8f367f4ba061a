// The one way kernels are launched: SDGEN_LAUNCH(kernel, grid, block, shared_bytes, stream, args...).
// Under nvcc it is <<<>>> followed by a launch-error check naming the kernel; in the emulated
// build it hands the kernel to the SIMT emulator, which runs it to completion (faults throw
// simt::Fault naming kernel, block and thread). Template kernels go in parentheses:
// SDGEN_LAUNCH((my_kernel<float>), ...).
#pragma once
#include <string>

#include "check.h"
#include "cuda_compat.cuh"

namespace sdgen {
namespace cuda {

template <class... KArgs, class... Args>
void launch_kernel(const char* name, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                   size_t shared_bytes, cudaStream_t stream, Args&&... args) {
#if defined(__CUDACC__)
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<KArgs>(args)...);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda_error(e, name, __FILE__, __LINE__);
#else
  (void)stream;
  auto body = [&]() { kernel(static_cast<KArgs>(args)...); };
  simt::LaunchSpec spec{name, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes};
  simt::launch(spec, body);
#endif
}

inline unsigned ceil_div(long long a, long long b) { return (unsigned)((a + b - 1) / b); }

}  // namespace cuda
}  // namespace sdgen

#define SDGEN_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  ::sdgen::cuda::launch_kernel(#kernel, kernel, grid, block, shared_bytes, stream, __VA_ARGS__)
