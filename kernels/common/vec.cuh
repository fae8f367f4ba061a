// Vector memory access and division-free index walks for the memory-bound kernels
// (elementwise.cu, layernorm.cu). Include after cuda_compat.cuh (launch.cuh brings it).
//
// Pack<T, N>: N elements of T moved as one access of up to 16 bytes (float4 / 8 halves = one
// LDG.128/STG.128; 32 bytes are two). load/store need the address aligned to min(16, N·sizeof T):
// launchers check with aligned16() at run time and fall back to N = 1 (the scalar version).
//
// Walk: a grid-stride loop over a [rows, cols] index space (x dimension of the grid) with 32-bit
// indices and no division per step: the stride's (rows, cols) split is computed once per thread.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define SDGEN_UNROLL _Pragma("unroll")
#else
#define SDGEN_UNROLL _Pragma("GCC unroll 16")
#endif

namespace sdgen {
namespace kern {

template <class T, int N>
struct alignas(sizeof(T) * N < 16 ? sizeof(T) * N : 16) Pack {
  T v[N];
};

// Elements of T in 16 bytes: the vector width of the v2 kernels.
template <class T>
inline constexpr int kVec = (int)(16 / sizeof(T));

template <int N, class T>
__device__ __forceinline__ Pack<T, N> load(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}
template <int N, class T>
__device__ __forceinline__ void store(T* p, const Pack<T, N>& v) {
  *reinterpret_cast<Pack<T, N>*>(p) = v;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// for (Walk w(cols); w.r < rows; w.next()) visits every (r, j), r < rows, j < cols, once over the
// grid's x threads; rows · cols must fit in 31 bits (launchers check), cols > 0.
struct Walk {
  unsigned r, j, cols, step_r, step_j;
  __device__ __forceinline__ explicit Walk(unsigned cols_) : cols(cols_) {
    const unsigned stride = gridDim.x * blockDim.x, i = blockIdx.x * blockDim.x + threadIdx.x;
    step_r = stride / cols;
    step_j = stride - step_r * cols;
    r = i / cols;
    j = i - r * cols;
  }
  __device__ __forceinline__ void next() {
    j += step_j;
    r += step_r;
    if (j >= cols) j -= cols, ++r;
  }
};

}  // namespace kern
}  // namespace sdgen
