// LayerNorm over the last dim: y = (x - mean) / sqrt(var + eps) * gamma + beta, biased variance
// (PyTorch's), fp32 statistics. Layout: x, y [rows, C] contiguous (the transformer's [B, L, C]
// tokens, CLIP's [B, 77, 768]); gamma, beta [C] in x's dtype. One warp per row, 8 rows per
// 256-thread block, shuffle reductions only (no barriers). Two passes about a pivot (the row's
// first element, as in groupnorm.cu): sums of x - pivot give mean - pivot, then the sum of
// squared deviations; exact enough for rows far from 0.
// Versions:
//   v1 scalar: lane-strided scalar loads, the row read three times (from L1 after the first);
//      used when C is not a multiple of the vector width, a pointer is not 16-byte aligned, or
//      C is beyond what v2 holds in registers.
//   v2 vectorized: the row read once with 16-byte loads (float4 / 8 halves) into registers,
//      K vectors per lane (K·32·(16 / sizeof T) >= C, K <= 10: C up to 1280 in fp32, 2560 in
//      fp16: the UNet's 320..1280 and CLIP's 768), both passes and the output from registers,
//      gamma/beta with 16-byte loads, y with 16-byte stores. Same formulas as v1.
// Index arithmetic is 32-bit (the launcher checks rows · C < 2^31).
// Test: simt_tests --gtest_filter='CudaEmu/*ln_*' (emulated, against the CPU backend in fp32 and
// fp16: v2 rows 2x77x768, 2x4096x320, ..., v1 rows with odd C, an unaligned slice, C = 3000);
// the same table runs on a GPU build. Benchmark: the table's perf mode, build/benchmarks/op_perf_gpu
// --filter ln_ (v2 on the SD rows, v1 on ln_unaligned_* and C = 3000; GB/s and fraction of peak).
#include <climits>
#include <string>

#include "kernels.h"

#include "common/launch.cuh"
#include "common/vec.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

constexpr int kWarps = 8;

// 1 / sqrt(var + eps) from this lane's part of the sum of squared deviations.
__device__ __forceinline__ float rstd_from(float sq, int c, float eps) {
  return rsqrtf(kern::warp_sum(sq) / (float)c + eps);
}

template <class T>
__global__ void layer_norm_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                  const T* __restrict__ beta, T* __restrict__ y, unsigned rows,
                                  int c, float eps) {
  const unsigned row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;  // whole warps leave together; nothing below waits for them
  const T* xr = x + row * (unsigned)c;
  float pivot = to_float(xr[0]);
  float sum = 0.f;
  for (int i = lane; i < c; i += 32) sum += to_float(xr[i]) - pivot;
  float shift = kern::warp_sum(sum) / (float)c;  // mean - pivot
  float sq = 0.f;
  for (int i = lane; i < c; i += 32) {
    float d = (to_float(xr[i]) - pivot) - shift;
    sq += d * d;
  }
  float rstd = rstd_from(sq, c, eps);
  T* yr = y + row * (unsigned)c;
  for (int i = lane; i < c; i += 32)
    yr[i] = from_float<T>(((to_float(xr[i]) - pivot) - shift) * rstd * to_float(gamma[i]) + to_float(beta[i]));
}

// Lane l holds vectors l, l + 32, ..., l + 32(K - 1) of the row (those below C / N).
template <class T, int K>
__global__ void layer_norm_vec_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                      const T* __restrict__ beta, T* __restrict__ y, unsigned rows,
                                      int c, float eps) {
  constexpr int N = kern::kVec<T>;
  const unsigned row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31, cv = c / N;
  if (row >= rows) return;  // whole warps leave together; nothing below waits for them
  const T* xr = x + row * (unsigned)c;
  float v[K][N];
  SDGEN_UNROLL for (int k = 0; k < K; ++k) {
    const int j = lane + 32 * k;
    if (j < cv) {
      const kern::Pack<T, N> p = kern::load<N>(xr + j * N);
      SDGEN_UNROLL for (int e = 0; e < N; ++e) v[k][e] = to_float(p.v[e]);
    } else {
      SDGEN_UNROLL for (int e = 0; e < N; ++e) v[k][e] = 0.f;
    }
  }
  // The pivot is the row's first element: lane 0's first value.
  const float pivot = __shfl_sync(0xffffffffu, v[0][0], 0);
  float sum = 0.f;
  SDGEN_UNROLL for (int k = 0; k < K; ++k) {
    if (lane + 32 * k < cv) {
      SDGEN_UNROLL for (int e = 0; e < N; ++e) sum += v[k][e] - pivot;
    }
  }
  const float shift = kern::warp_sum(sum) / (float)c;  // mean - pivot
  float sq = 0.f;
  SDGEN_UNROLL for (int k = 0; k < K; ++k) {
    if (lane + 32 * k < cv) {
      SDGEN_UNROLL for (int e = 0; e < N; ++e) {
        const float d = (v[k][e] - pivot) - shift;
        sq += d * d;
      }
    }
  }
  const float rstd = rstd_from(sq, c, eps);
  T* yr = y + row * (unsigned)c;
  SDGEN_UNROLL for (int k = 0; k < K; ++k) {
    const int j = lane + 32 * k;
    if (j < cv) {
      const kern::Pack<T, N> g = kern::load<N>(gamma + j * N), b = kern::load<N>(beta + j * N);
      kern::Pack<T, N> o;
      SDGEN_UNROLL for (int e = 0; e < N; ++e)
        o.v[e] = from_float<T>(((v[k][e] - pivot) - shift) * rstd * to_float(g.v[e]) + to_float(b.v[e]));
      kern::store<N>(yr + j * N, o);
    }
  }
}

template <class T>
void launch(const void* x, const void* gamma, const void* beta, void* y, int64_t rows, int64_t c,
            float eps, cudaStream_t s) {
  constexpr int N = kern::kVec<T>;
  const T *xp = static_cast<const T*>(x), *gp = static_cast<const T*>(gamma),
          *bp = static_cast<const T*>(beta);
  T* yp = static_cast<T*>(y);
  const dim3 grid((unsigned)((rows + kWarps - 1) / kWarps)), block(kWarps * 32);
  const int64_t per_lane = (c / N + 31) / 32;  // vectors per lane
  const bool vec = c % N == 0 && per_lane <= 10 && kern::aligned16(xp) && kern::aligned16(gp) &&
                   kern::aligned16(bp) && kern::aligned16(yp);
  const unsigned r = (unsigned)rows;
  const int ci = (int)c;
  if (!vec)
    SDGEN_LAUNCH(layer_norm_kernel<T>, grid, block, 0, s, xp, gp, bp, yp, r, ci, eps);
  else if (per_lane <= 2)
    SDGEN_LAUNCH((layer_norm_vec_kernel<T, 2>), grid, block, 0, s, xp, gp, bp, yp, r, ci, eps);
  else if (per_lane <= 4)
    SDGEN_LAUNCH((layer_norm_vec_kernel<T, 4>), grid, block, 0, s, xp, gp, bp, yp, r, ci, eps);
  else if (per_lane <= 6)
    SDGEN_LAUNCH((layer_norm_vec_kernel<T, 6>), grid, block, 0, s, xp, gp, bp, yp, r, ci, eps);
  else
    SDGEN_LAUNCH((layer_norm_vec_kernel<T, 10>), grid, block, 0, s, xp, gp, bp, yp, r, ci, eps);
}

}  // namespace

void layer_norm(const void* x, const void* gamma, const void* beta, void* y, int64_t rows,
                int64_t c, float eps, DType dt, cudaStream_t s) {
  if (rows * c == 0) return;
  SDGEN_CHECK(rows * c <= INT_MAX,
              "layer_norm: " + std::to_string(rows) + " x " + std::to_string(c) +
                  " elements exceed the kernel's 32-bit indexing (at most 2^31 - 1)");
  // x read once (v2: into registers; v1: L1 serves its second and third reads), y written,
  // gamma and beta read (once per row from L1/L2: counted once).
  cuda::note_traffic(2.0 * rows * c * dtype_size(dt) + 2.0 * c * dtype_size(dt));
  if (dt == DType::F32)
    launch<float>(x, gamma, beta, y, rows, c, eps, s);
  else if (dt == DType::BF16)
    launch<__nv_bfloat16>(x, gamma, beta, y, rows, c, eps, s);
  else
    launch<__half>(x, gamma, beta, y, rows, c, eps, s);
}

}  // namespace kernels
}  // namespace sdgen
