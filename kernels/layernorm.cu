// LayerNorm over the last dim: y = (x - mean) / sqrt(var + eps) * gamma + beta, fp32 statistics.
// Layout: x, y [rows, C] contiguous (the transformer's [B, L, C] tokens); gamma, beta [C] in x's
// dtype. Versions: one warp per row, 8 rows per 256-thread block, shuffle reductions only (no
// barriers), two-pass mean/variance about a pivot; T = float | __half. Test: simt_tests
// --gtest_filter='CudaOps*LayerNorm*' (emulated, against the CPU backend; the same test runs on a
// GPU build). Benchmark: none yet.
#include "kernels.h"

#include "common/launch.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

constexpr int kWarps = 8;

template <class T>
__global__ void layer_norm_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                  const T* __restrict__ beta, T* __restrict__ y, int64_t rows,
                                  int c, float eps) {
  int64_t row = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= rows) return;  // whole warps leave together; nothing below waits for them
  const T* xr = x + row * c;
  // Sums of x - pivot (the row's first element), as in groupnorm.cu: exact for rows far from 0.
  float pivot = to_float(xr[0]);
  float sum = 0.f;
  for (int i = lane; i < c; i += 32) sum += to_float(xr[i]) - pivot;
  float shift = kern::warp_sum(sum) / (float)c;  // mean - pivot
  float sq = 0.f;
  for (int i = lane; i < c; i += 32) {
    float d = (to_float(xr[i]) - pivot) - shift;
    sq += d * d;
  }
  float rstd = rsqrtf(kern::warp_sum(sq) / (float)c + eps);
  T* yr = y + row * c;
  for (int i = lane; i < c; i += 32)
    yr[i] = from_float<T>(((to_float(xr[i]) - pivot) - shift) * rstd * to_float(gamma[i]) + to_float(beta[i]));
}

}  // namespace

void layer_norm(const void* x, const void* gamma, const void* beta, void* y, int64_t rows,
                int64_t c, float eps, DType dt, cudaStream_t s) {
  if (rows * c == 0) return;
  // A row (at most 768 values here) stays in L1 between its three passes: x read once, y written.
  cuda::note_traffic(2.0 * rows * c * dtype_size(dt) + 2.0 * c * dtype_size(dt));
  dim3 grid((unsigned)((rows + kWarps - 1) / kWarps)), block(kWarps * 32);
  if (dt == DType::F32)
    SDGEN_LAUNCH(layer_norm_kernel<float>, grid, block, 0, s, static_cast<const float*>(x),
                 static_cast<const float*>(gamma), static_cast<const float*>(beta),
                 static_cast<float*>(y), rows, (int)c, eps);
  else
    SDGEN_LAUNCH(layer_norm_kernel<__half>, grid, block, 0, s, static_cast<const __half*>(x),
                 static_cast<const __half*>(gamma), static_cast<const __half*>(beta),
                 static_cast<__half*>(y), rows, (int)c, eps);
}

}  // namespace kernels
}  // namespace sdgen
