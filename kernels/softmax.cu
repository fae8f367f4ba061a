// Softmax over the last dim: y = exp(x - max) / sum(exp(x - max)), fp32 math. Layout: x, y
// [rows, cols] contiguous. Versions: one warp per row, 8 rows per 256-thread block, three passes
// (max, sum, write) with shuffle reductions; T = float | __half | __nv_bfloat16. (Attention does its own softmax
// on chip: attention.cu.) Test: simt_tests --gtest_filter='CudaOps*Softmax*' (emulated, against
// the CPU backend; the same test runs on a GPU build). Benchmark: op_perf_gpu --filter softmax.
#include "kernels.h"

#include "common/launch.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

constexpr int kWarps = 8;

template <class T>
__global__ void softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int cols) {
  int64_t row = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= rows) return;  // whole warps leave together
  const T* xr = x + row * cols;
  float m = -INFINITY;
  for (int i = lane; i < cols; i += 32) m = fmaxf(m, to_float(xr[i]));
  m = kern::warp_max(m);
  float sum = 0.f;
  for (int i = lane; i < cols; i += 32) sum += expf(to_float(xr[i]) - m);
  float inv = 1.f / kern::warp_sum(sum);
  T* yr = y + row * cols;
  for (int i = lane; i < cols; i += 32) yr[i] = from_float<T>(expf(to_float(xr[i]) - m) * inv);
}

}  // namespace

void softmax(const void* x, void* y, int64_t rows, int64_t cols, DType dt, cudaStream_t s) {
  if (rows * cols == 0) return;
  // Rows of up to 4096 values per warp do not all stay cached across the three passes: count the
  // two reads that feed the sum and the output, and the write.
  cuda::note_traffic(3.0 * rows * cols * dtype_size(dt));
  dim3 grid((unsigned)((rows + kWarps - 1) / kWarps)), block(kWarps * 32);
  if (dt == DType::F32)
    SDGEN_LAUNCH((softmax_kernel<float>), grid, block, 0, s, static_cast<const float*>(x),
                 static_cast<float*>(y), rows, (int)cols);
  else if (dt == DType::BF16)
    SDGEN_LAUNCH((softmax_kernel<__nv_bfloat16>), grid, block, 0, s, static_cast<const __nv_bfloat16*>(x),
                 static_cast<__nv_bfloat16*>(y), rows, (int)cols);
  else
    SDGEN_LAUNCH((softmax_kernel<__half>), grid, block, 0, s, static_cast<const __half*>(x),
                 static_cast<__half*>(y), rows, (int)cols);
}

}  // namespace kernels
}  // namespace sdgen
