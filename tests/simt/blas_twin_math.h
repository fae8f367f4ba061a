// What the cuBLAS and cuBLASLt twins (cublas_twin.cpp, cublaslt_twin.cpp) compute alike: element
// loads and stores of fp32/fp16/bf16 data, the TF32 rounding of tensor-core inputs, and the fp32 dot
// product with reordered partial sums.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <library_types.h>

#include <cstdint>
#include <cstring>

namespace simt::blas {

inline float load(const void* p, int t, long long i) {
  if (t == CUDA_R_32F) return static_cast<const float*>(p)[i];
  if (t == CUDA_R_16BF) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return __half2float(static_cast<const __half*>(p)[i]);
}
inline void store(void* p, int t, long long i, float v) {
  if (t == CUDA_R_32F)
    static_cast<float*>(p)[i] = v;
  else if (t == CUDA_R_16BF)
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else
    static_cast<__half*>(p)[i] = __float2half_rn(v);
}

// TF32 keeps 10 mantissa bits (round to nearest, ties away, as the tensor cores' conversion).
inline float to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&x, &u, 4);
  return x;
}

// fp32 dot product with eight partial sums (the compiler vectorizes it; a GPU GEMM reorders its
// sums too).
inline float dot(const float* a, const float* b, long long k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long long p = 0;
  for (; p + 8 <= k; p += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[p + l] * b[p + l];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; p < k; ++p) s += a[p] * b[p];
  return s;
}

}  // namespace simt::blas
