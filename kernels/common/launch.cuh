// The one way kernels are launched: SDGEN_LAUNCH(kernel, grid, block, shared_bytes, stream, args...).
// Under nvcc it is <<<>>> followed by a launch-error check naming the kernel; in the emulated
// build it hands the kernel to the SIMT emulator, which runs it to completion (faults throw
// simt::Fault naming kernel, block and thread). Template kernels go in parentheses:
// SDGEN_LAUNCH((my_kernel<float>), ...).
#pragma once
#include <string>

#include "check.h"
#include "cuda_compat.cuh"
#if !defined(__CUDACC__)
#include "simt_census.h"
#endif

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
  const simt::LaunchSpec spec{name, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes};
  const std::pair<double, double> cost = simt::census::take_note();
  // Arguments by value: a captured launch runs later, when the caller's variables are gone.
  auto run = [=]() {
    simt::census::on_launch(name, simt::replaying(), cost.first, cost.second);
    if (simt::census::dry()) return;  // counted, not run (benchmarks/cuda_census)
    auto body = [&]() { kernel(static_cast<KArgs>(args)...); };
    simt::launch(spec, body);
  };
  if (simt::capturing())
    simt::capture(run);
  else
    run();
#endif
}

// States the global-memory bytes (and FLOPs) the launcher's next launch must move (compute), for
// the census of the emulated build (tests/simt/simt_census.h); nothing under nvcc.
inline void note_traffic(double bytes, double flops = 0) {
#if defined(__CUDACC__)
  (void)bytes, (void)flops;
#else
  simt::census::note_next_launch(bytes, flops);
#endif
}

inline unsigned ceil_div(long long a, long long b) { return (unsigned)((a + b - 1) / b); }

// Blocks for a grid-stride loop over `items` with `threads` per block: at most 1024 blocks keeps
// a 132-SM GPU full and the emulator's fiber count (one per thread) bounded; at least one block.
inline dim3 grid_stride_blocks(long long items, int threads) {
  long long b = (items + threads - 1) / threads;
  return dim3((unsigned)(b < 1024 ? (b > 0 ? b : 1) : 1024));
}

}  // namespace cuda
}  // namespace sdgen

#define SDGEN_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  ::sdgen::cuda::launch_kernel(#kernel, kernel, grid, block, shared_bytes, stream, __VA_ARGS__)
