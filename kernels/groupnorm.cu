// GroupNorm with optional fused SiLU: y = silu?((x - mean_g) / sqrt(var_g + eps) * gamma + beta),
// statistics in fp32 over each (image, group). Layout: x and y NHWC viewed as [batch, spatial, C],
// a group is channels [g*C/G, (g+1)*C/G) at every spatial position; gamma, beta [C] in x's dtype.
// Versions: one block of 256 threads per (image, group), two-pass mean/variance about a pivot (exact for
// activations with large means), T = float | __half. Test: simt_tests
// --gtest_filter='CudaOps*GroupNorm*' (emulated, against the CPU backend; the same test runs on a
// GPU build). Benchmark: none yet.
#include "kernels.h"

#include "common/launch.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

constexpr int kThreads = 256;

template <class T, bool kSilu>
__global__ void group_norm_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                  const T* __restrict__ beta, T* __restrict__ y, int64_t spatial,
                                  int c, int groups, float eps) {
  __shared__ float scratch[32];
  int n = blockIdx.x / groups, g = blockIdx.x % groups, cg = c / groups;
  int64_t base = (int64_t)n * spatial * c + (int64_t)g * cg;
  int64_t count = spatial * cg;
  // Element i of the group: position i / cg, channel i % cg; consecutive threads read
  // consecutive channels, so loads coalesce within each position's run of cg channels.
  // Sums are of x - pivot (the group's first element): with activations far from zero (|mean| of
  // hundreds, std of 0.1) a plain fp32 sum, or a mean rounded to fp32, costs every digit of
  // x - mean, while x - pivot is exact and the mean is carried as pivot + small offset.
  float pivot = to_float(x[base]);
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    int64_t p = i / cg;
    sum += to_float(x[base + p * c + (i - p * cg)]) - pivot;
  }
  float shift = kern::block_sum(sum, scratch) / (float)count;  // mean - pivot
  float sq = 0.f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    int64_t p = i / cg;
    float d = (to_float(x[base + p * c + (i - p * cg)]) - pivot) - shift;
    sq += d * d;
  }
  float rstd = rsqrtf(kern::block_sum(sq, scratch) / (float)count + eps);
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    int64_t p = i / cg;
    int ch = (int)(i - p * cg);
    int64_t off = base + p * c + ch;
    float v = ((to_float(x[off]) - pivot) - shift) * rstd * to_float(gamma[g * cg + ch]) +
              to_float(beta[g * cg + ch]);
    if (kSilu) v = v * kern::sigmoidf_(v);
    y[off] = from_float<T>(v);
  }
}

template <class T>
void launch(const void* x, const void* gamma, const void* beta, void* y, int64_t batch,
            int64_t spatial, int64_t c, int groups, float eps, bool silu, cudaStream_t s) {
  dim3 grid((unsigned)(batch * groups)), block(kThreads);
  // Three reads of x (two statistics passes and the apply pass) and one write of y.
  cuda::note_traffic(4.0 * batch * spatial * c * sizeof(T));
  auto args = [&](auto kernel, const char* name) {
    cuda::launch_kernel(name, kernel, grid, block, 0, s, static_cast<const T*>(x),
                        static_cast<const T*>(gamma), static_cast<const T*>(beta),
                        static_cast<T*>(y), spatial, (int)c, groups, eps);
  };
  if (silu)
    args(group_norm_kernel<T, true>, "group_norm_kernel<T, silu>");
  else
    args(group_norm_kernel<T, false>, "group_norm_kernel<T>");
}

}  // namespace

void group_norm(const void* x, const void* gamma, const void* beta, void* y, int64_t batch,
                int64_t spatial, int64_t c, int groups, float eps, bool silu, DType dt,
                cudaStream_t s) {
  if (batch * spatial * c == 0) return;
  if (dt == DType::F32)
    launch<float>(x, gamma, beta, y, batch, spatial, c, groups, eps, silu, s);
  else
    launch<__half>(x, gamma, beta, y, batch, spatial, c, groups, eps, silu, s);
}

}  // namespace kernels
}  // namespace sdgen
