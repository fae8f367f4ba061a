// GroupNorm with optional fused SiLU: y = silu?((x - mean_g) / sqrt(var_g + eps) * gamma + beta),
// statistics in fp32 over each (image, group). Layout: x and y NHWC viewed as [batch, rows, C]
// (rows = spatial positions), a group is channels [g*C/G, (g+1)*C/G) at every row; gamma, beta [C]
// in x's dtype.
// Three launches. stats: a grid of (splits, images) blocks, each over a run of rows and all C
// channels, every thread on a fixed column of V channels (V = 8 halves or 4 floats: one 16-byte
// load; V = 1 where C or a pointer does not allow it), summing x - pivot and its square per
// channel, reduced in shared memory to one (sum, sum of squares) per group and split. finalize:
// per (image, group), the splits' sums added in a fixed order (deterministic, so graph replays and
// eager runs agree to the bit). apply: the same grid and columns, ((x - pivot) - shift) ·
// rstd·gamma + beta, SiLU, one 16-byte store. Why not one block per (image, group): that reads x
// three times (two statistics passes and the apply pass) and gives too few blocks to fill a GPU
// (a few hundred for the UNet, a few dozen for the VAE); this reads x twice, writes it once, and
// keeps index arithmetic 32-bit within an image.
// The pivot is the group's first element: with activations far from zero (|mean| of hundreds,
// std 0.1) a plain fp32 sum, or a mean rounded to fp32, costs every digit of x - mean, while
// x - pivot is exact and the mean is carried as pivot + a small shift.
// No residual is fused: in SD v1 no GroupNorm output is added to a residual (the adds follow the
// convolutions and the transformer's projections).
// Test: simt_tests --gtest_filter='CudaOps*gn*' (emulated, against the CPU backend; the same test
// runs on a GPU build). Benchmark: the table's perf mode, build/benchmarks/op_perf_gpu --filter gn_
// (16-byte path on the aligned SD rows, the scalar one on gn_silu_unaligned_*; fp32, fp16 and bf16 (as fp16: 8 per 16 bytes), GB/s
// and fraction of peak); benchmarks/bench_emu_groupnorm: the emulator's speed.
#include "kernels.h"

#include <algorithm>

#include "common/launch.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

// V consecutive elements, loaded or stored as one 4·V- or 2·V-byte access.
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// The thread layout shared by the stats and apply kernels: `lanes` = C / V columns; a block of
// `threads` covers rows_per_pass = threads / lanes rows at once (at least 1); thread t works on
// column t % lanes and rows r0 + t / lanes, r0 + t / lanes + rows_per_pass, ...
struct Layout {
  int rows, c, groups, lanes, rows_per_pass, rows_per_split;
};

// Blocks of the stats and apply kernels have up to 1024 threads (plan(): one lane per V channels,
// C/V lanes past 256), so their registers are fitted to that: without the bound ptxas may use more
// than a 1024-thread block can hold, and such a launch fails on the device.
constexpr int kMaxThreads = 1024;

template <class T, int V>
__global__ void __launch_bounds__(kMaxThreads) group_norm_stats_kernel(const T* __restrict__ x, float* __restrict__ partial, Layout L) {
  SDGEN_DYNAMIC_SHARED(float, red);  // [rows_per_pass][C][2]
  const int n = blockIdx.y, split = blockIdx.x, cg = L.c / L.groups;
  const T* xn = x + (int64_t)n * L.rows * L.c;
  const int col = threadIdx.x % L.lanes, sub = threadIdx.x / L.lanes;
  const bool active = sub < L.rows_per_pass;
  float s[V], q[V], pivot[V];
  for (int k = 0; k < V; ++k) {
    s[k] = q[k] = 0.f;
    pivot[k] = to_float(xn[((col * V + k) / cg) * cg]);
  }
  if (active) {
    const int r0 = split * L.rows_per_split, r1 = min(L.rows, r0 + L.rows_per_split);
    for (int r = r0 + sub; r < r1; r += L.rows_per_pass) {
      const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(xn + r * L.c + col * V);
      for (int k = 0; k < V; ++k) {
        const float d = to_float(p.v[k]) - pivot[k];
        s[k] += d;
        q[k] += d * d;
      }
    }
    for (int k = 0; k < V; ++k) {
      red[(sub * L.c + col * V + k) * 2] = s[k];
      red[(sub * L.c + col * V + k) * 2 + 1] = q[k];
    }
  }
  __syncthreads();
  // One thread per group adds its channels over the passes, in a fixed order.
  for (int g = threadIdx.x; g < L.groups; g += blockDim.x) {
    float gs = 0.f, gq = 0.f;
    for (int p = 0; p < L.rows_per_pass; ++p)
      for (int ch = g * cg; ch < (g + 1) * cg; ++ch) {
        gs += red[(p * L.c + ch) * 2];
        gq += red[(p * L.c + ch) * 2 + 1];
      }
    float* out = partial + (((int64_t)n * gridDim.x + split) * L.groups + g) * 2;
    out[0] = gs;
    out[1] = gq;
  }
}

// stats[n][g] = (pivot, shift = mean - pivot, rstd).
template <class T>
__global__ void group_norm_finalize_kernel(const T* __restrict__ x, const float* __restrict__ partial,
                                           float* __restrict__ stats, Layout L, int splits, float eps) {
  const int n = blockIdx.x, cg = L.c / L.groups;
  const float count = (float)L.rows * (float)cg;
  for (int g = threadIdx.x; g < L.groups; g += blockDim.x) {
    float s = 0.f, q = 0.f;
    for (int k = 0; k < splits; ++k) {
      const float* p = partial + (((int64_t)n * splits + k) * L.groups + g) * 2;
      s += p[0];
      q += p[1];
    }
    const float shift = s / count;
    const float var = fmaxf(q / count - shift * shift, 0.f);
    float* out = stats + ((int64_t)n * L.groups + g) * 3;
    out[0] = to_float(x[(int64_t)n * L.rows * L.c + g * cg]);
    out[1] = shift;
    out[2] = rsqrtf(var + eps);
  }
}

template <class T, int V, bool kSilu>
__global__ void __launch_bounds__(kMaxThreads) group_norm_apply_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                        const T* __restrict__ beta, const float* __restrict__ stats,
                                        T* __restrict__ y, Layout L) {
  const int n = blockIdx.y, split = blockIdx.x, cg = L.c / L.groups;
  const int col = threadIdx.x % L.lanes, sub = threadIdx.x / L.lanes;
  if (sub >= L.rows_per_pass) return;
  float pivot[V], shift[V], a[V], b[V];
  for (int k = 0; k < V; ++k) {
    const int ch = col * V + k;
    const float* st = stats + ((int64_t)n * L.groups + ch / cg) * 3;
    pivot[k] = st[0];
    shift[k] = st[1];
    a[k] = st[2] * to_float(gamma[ch]);
    b[k] = to_float(beta[ch]);
  }
  const int64_t base = (int64_t)n * L.rows * L.c;
  const T* xn = x + base;
  T* yn = y + base;
  const int r0 = split * L.rows_per_split, r1 = min(L.rows, r0 + L.rows_per_split);
  for (int r = r0 + sub; r < r1; r += L.rows_per_pass) {
    const int off = r * L.c + col * V;
    const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(xn + off);
    Pack<T, V> o;
    for (int k = 0; k < V; ++k) {
      float v = ((to_float(p.v[k]) - pivot[k]) - shift[k]) * a[k] + b[k];
      if (kSilu) v = v * kern::sigmoidf_(v);
      o.v[k] = from_float<T>(v);
    }
    *reinterpret_cast<Pack<T, V>*>(yn + off) = o;
  }
}

// The grid: enough (split, image) blocks to fill a large GPU (about two per SM of a 132-SM H100),
// each over at least 16 rows.
struct Plan {
  Layout layout;
  int threads, splits;
};

template <class T, int V>
Plan plan(int64_t batch, int64_t rows, int64_t c, int groups) {
  Plan p;
  Layout& L = p.layout;
  L.rows = (int)rows, L.c = (int)c, L.groups = groups, L.lanes = (int)(c / V);
  p.threads = L.lanes <= 256 ? 256 : (L.lanes + 31) / 32 * 32;
  L.rows_per_pass = p.threads / L.lanes;
  const int64_t want = (264 + batch - 1) / batch;
  const int64_t most = (rows + 15) / 16;
  p.splits = (int)std::max<int64_t>(1, std::min(want, most));
  L.rows_per_split = (int)((rows + p.splits - 1) / p.splits);
  p.splits = (int)((rows + L.rows_per_split - 1) / L.rows_per_split);
  return p;
}

template <class T, int V>
void launch(const void* xv, const void* gamma, const void* beta, void* y, float* work, int64_t batch,
            int64_t rows, int64_t c, int groups, float eps, bool silu, cudaStream_t s) {
  const T* x = static_cast<const T*>(xv);
  const Plan p = plan<T, V>(batch, rows, c, groups);
  float* partial = work;
  float* stats = work + batch * p.splits * groups * 2;
  const dim3 grid((unsigned)p.splits, (unsigned)batch);
  const size_t smem = (size_t)p.layout.rows_per_pass * c * 2 * sizeof(float);
  const double elems = (double)batch * rows * c;
  cuda::note_traffic(elems * sizeof(T));
  cuda::launch_kernel("group_norm_stats_kernel", group_norm_stats_kernel<T, V>, grid, dim3(p.threads), smem, s, x,
                      partial, p.layout);
  cuda::note_traffic(batch * p.splits * groups * 8.0);
  cuda::launch_kernel("group_norm_finalize_kernel", group_norm_finalize_kernel<T>, dim3((unsigned)batch), dim3(32),
                      0, s, x, static_cast<const float*>(partial), stats, p.layout, p.splits, eps);
  cuda::note_traffic(2.0 * elems * sizeof(T));
  auto apply = [&](auto kernel, const char* name) {
    cuda::launch_kernel(name, kernel, grid, dim3(p.threads), 0, s, x, static_cast<const T*>(gamma),
                        static_cast<const T*>(beta), static_cast<const float*>(stats), static_cast<T*>(y),
                        p.layout);
  };
  if (silu)
    apply(group_norm_apply_kernel<T, V, true>, "group_norm_apply_kernel<silu>");
  else
    apply(group_norm_apply_kernel<T, V, false>, "group_norm_apply_kernel");
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The vector width a call can use: 16-byte accesses need C a multiple of V, 16-byte aligned
// tensors, and a block of at most 1024 threads.
template <class T>
int width(const void* x, const void* y, int64_t c) {
  constexpr int V = 16 / sizeof(T);
  if (c % V == 0 && aligned16(x) && aligned16(y) && c / V <= kMaxThreads) return V;
  return 1;
}

}  // namespace

int64_t group_norm_workspace_floats(int64_t batch, int64_t spatial, int64_t c, int groups, DType dt) {
  // The largest split count any vector width can choose (V = 1 and V = 16/size plan the same splits).
  // bf16 plans as fp16 does (the plan depends on the element size only).
  const Plan p = dt == DType::F32 ? plan<float, 1>(batch, spatial, c, groups) : plan<__half, 1>(batch, spatial, c, groups);
  return batch * p.splits * groups * 2 + batch * groups * 3;
}

void group_norm(const void* x, const void* gamma, const void* beta, void* y, float* workspace, int64_t batch,
                int64_t spatial, int64_t c, int groups, float eps, bool silu, DType dt, cudaStream_t s) {
  if (batch * spatial * c == 0) return;
  SDGEN_CHECK(groups > 0 && c % groups == 0, "group_norm: " + std::to_string(groups) + " groups do not divide " +
                                                 std::to_string(c) + " channels");
  SDGEN_CHECK(spatial * c < ((int64_t)1 << 31) && batch < 65536 && c <= 6144,
              "group_norm: [" + std::to_string(batch) + ", " + std::to_string(spatial) + ", " + std::to_string(c) +
                  "] is past the kernel's 32-bit per-image indexing, 65535 images or 6144 channels");
  const int v = dt == DType::F32 ? width<float>(x, y, c) : width<__half>(x, y, c);  // bf16: as fp16
  SDGEN_CHECK(c / v <= kMaxThreads, "group_norm: " + std::to_string(c) +
                                 " channels that are not a multiple of 16 bytes need more than 1024 threads");
  if (dt == DType::F32) {
    if (width<float>(x, y, c) == 4)
      launch<float, 4>(x, gamma, beta, y, workspace, batch, spatial, c, groups, eps, silu, s);
    else
      launch<float, 1>(x, gamma, beta, y, workspace, batch, spatial, c, groups, eps, silu, s);
  } else if (dt == DType::BF16) {
    if (width<__nv_bfloat16>(x, y, c) == 8)
      launch<__nv_bfloat16, 8>(x, gamma, beta, y, workspace, batch, spatial, c, groups, eps, silu, s);
    else
      launch<__nv_bfloat16, 1>(x, gamma, beta, y, workspace, batch, spatial, c, groups, eps, silu, s);
  } else {
    if (width<__half>(x, y, c) == 8)
      launch<__half, 8>(x, gamma, beta, y, workspace, batch, spatial, c, groups, eps, silu, s);
    else
      launch<__half, 1>(x, gamma, beta, y, workspace, batch, spatial, c, groups, eps, silu, s);
  }
}

}  // namespace kernels
}  // namespace sdgen
