// The portability layer every kernel file includes first. Compiled by nvcc it is plain CUDA;
// compiled by the host compiler (the emulated build, SDGEN_SIMT) it brings in the SIMT emulator
// (tests/simt/simt_runtime.h), which defines the same names on the host. Kernel sources use only
// what both sides provide: __global__/__device__, __shared__, threadIdx & co, __syncthreads, the
// *_sync warp operations, atomics, __half from cuda_fp16.h, __nv_bfloat16 from cuda_bf16.h, and the
// helpers below.
#pragma once

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// Dynamic shared memory as a T array `name` (one extern declaration of bytes, so template
// instantiations with different T do not clash).
#define SDGEN_DYNAMIC_SHARED(T, name)                                   \
  extern __shared__ __align__(16) unsigned char sdgen_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(sdgen_dynamic_smem_)
#else
#include "simt_runtime.h"
// In the emulator the pointer is bounds-checked against the launch's dynamic shared size.
#define SDGEN_DYNAMIC_SHARED(T, name) auto name = ::simt::dynamic_shared<T>()
#endif

namespace sdgen {
namespace kern {

// Kernels load T, compute in float, store T, for T = float, __half and (where a family has it)
// __nv_bfloat16; both 16-bit conversions round to nearest even.
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); }

}  // namespace kern
}  // namespace sdgen
