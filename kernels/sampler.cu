// The sampler's kernels, so that a whole denoising step stays on the device and can be replayed
// as one CUDA graph: the timestep embedding of timesteps[*step] (the step index lives in device
// memory, advanced by the graph itself), the UNet input (the latents divided by the unit's divisor,
// √(σ²+1) for the sigma-space samplers and 1 for the others, repeated for guidance and cast to the
// model's dtype), and one unit of the sampler's plan with the guidance combine fused in (a small
// per-step matrix over the latents, the guided output, up to four state buffers and the step's
// noise; sampler.h), inpainting's blend of the known region back to the picture's latents
// renoised to the unit's level (ops::inpaint_blend), the unit's denoised estimate for previews
// (ops::denoised), a ControlNet residual added to a UNet skip at the unit's conditioning scale
// (ops::add_scaled_at), and guidance rescale (ops::guidance_rescale: the guided output scaled toward
// the conditional output's standard deviation, one block per sample). Layout: flat arrays (the
// latents are NHWC; every op here is elementwise but guidance rescale's per-sample reductions).
// Math in fp32 in the order of the CPU backend (src/backend/cpu/sampler.cpp), so the emulated run
// reproduces the CPU's latents bit for bit (a GPU may contract into FMAs).
// Versions: one grid-stride kernel each (guidance rescale: one block per sample). Test: simt_tests
// --gtest_filter='*Sampler*', the op table's guidance_rescale rows and the emulated pipeline goldens.
// Benchmark: op_perf_gpu --filter ddim,sampler_step,timestep,repeat,guidance_rescale (a few thousand
// values per step: launch-bound).
#include "kernels.h"

#include <cmath>

#include "common/launch.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

constexpr int kThreads = 256;
dim3 grid_for(int64_t n) { return cuda::grid_stride_blocks(n, kThreads); }

template <class T>
__global__ void timestep_embedding_at_kernel(const float* __restrict__ timesteps,
                                             const float* __restrict__ step, T* __restrict__ y, int n,
                                             int half, float neg_log) {
  const float t = timesteps[(int)step[0]];
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n * half; i += gridDim.x * blockDim.x) {
    const int row = i / half, k = i - row * half;
    const float exponent = ((float)k * neg_log) / (float)half;  // as cpu::timestep_embedding
    const float arg = t * expf(exponent);
    y[row * 2 * half + k] = from_float<T>(cosf(arg));
    y[row * 2 * half + half + k] = from_float<T>(sinf(arg));
  }
}

// After every block of the step kernel has read the index (kernels on one stream run in order).
__global__ void advance_step_kernel(float* step) {
  if (threadIdx.x == 0 && blockIdx.x == 0) step[0] += 1.0f;
}

template <class T>
__global__ void scale_repeat_kernel(const float* __restrict__ x, const float* __restrict__ divisors,
                                    const float* __restrict__ step, T* __restrict__ y, int64_t n, int times) {
  const float d = divisors[(int)step[0]];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const T v = from_float<T>(x[i] / d);
    for (int r = 0; r < times; ++r) y[r * n + i] = v;
  }
}

// One plan unit: every output from the old values, the sums in column order as the CPU's.
template <class T>
__global__ void sampler_step_kernel(float* __restrict__ x, float* __restrict__ state, int K,
                                    const T* __restrict__ eps, const float* __restrict__ table,
                                    const float* __restrict__ noise, const float* __restrict__ step, int64_t n,
                                    int guided, float guidance) {
  const int u = (int)step[0], cols = 3 + K;
  const float* a = table + (size_t)u * (1 + K) * cols;
  const float* z = noise ? noise + (size_t)u * n : nullptr;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v[7];
    const float eu = to_float(eps[i]);
    v[0] = x[i];
    v[1] = guided ? eu + guidance * (to_float(eps[n + i]) - eu) : eu;
    for (int k = 0; k < K; ++k) v[2 + k] = state[k * n + i];
    v[2 + K] = z ? z[i] : 0.0f;
    float out[5];
    for (int r = 0; r <= K; ++r) {
      float acc = 0.0f;
      for (int j = 0; j < cols; ++j) acc += a[r * cols + j] * v[j];
      out[r] = acc;
    }
    x[i] = out[0];
    for (int k = 0; k < K; ++k) state[k * n + i] = out[1 + k];
  }
}

// Inpainting's blend, each product and sum rounded as torch evaluates it (no contraction into an
// FMA: the known region must equal the picture's renoised latents to the bit, as the CPU's).
__global__ void inpaint_blend_kernel(float* __restrict__ x, const float* __restrict__ mask,
                                     const float* __restrict__ x0, const float* __restrict__ noise,
                                     const float* __restrict__ table, const float* __restrict__ step, int64_t n) {
  const int u = (int)step[0] - 1;
  const float a = table[2 * u], b = table[2 * u + 1];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float proper = __fadd_rn(__fmul_rn(a, x0[i]), __fmul_rn(b, noise[i]));
    const float m = mask[i];
    x[i] = __fadd_rn(__fmul_rn(1.0f - m, proper), __fmul_rn(m, x[i]));
  }
}

// The denoised estimate a·x + b·ε, rounded as the CPU's (no FMA: the emulated run equals it).
template <class T>
__global__ void denoised_kernel(const float* __restrict__ x, const T* __restrict__ eps,
                                const float* __restrict__ table, const float* __restrict__ step,
                                float* __restrict__ out, int64_t n, int guided, float guidance) {
  const int u = (int)step[0];
  const float a = table[2 * u], b = table[2 * u + 1];  // row `step`: before the step advances it
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float eu = to_float(eps[i]);
    const float eg = guided ? __fadd_rn(eu, __fmul_rn(guidance, to_float(eps[n + i]) - eu)) : eu;
    out[i] = __fadd_rn(__fmul_rn(a, x[i]), __fmul_rn(b, eg));
  }
}

// Block-wide sum of one double per thread in a fixed tree order (blockDim.x a power of two); every
// thread gets the total. red: blockDim.x doubles of shared memory (a pointer, or the emulator's).
template <class P>
__device__ double block_sum_fixed(double v, P red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if ((int)threadIdx.x < width) red[threadIdx.x] += red[threadIdx.x + width];
    __syncthreads();
  }
  const double total = red[0];
  __syncthreads();
  return total;
}

// Guidance rescale of sample blockIdx.x: g written to out, the means and the sums of squared
// deviations of g and ε_c accumulated in double (two passes, as the CPU's), then out ← φ·(g·r) +
// (1 − φ)·g with r = std(ε_c)/std(g), rounded as the CPU's (no FMA).
template <class T>
__global__ void guidance_rescale_kernel(const T* __restrict__ eps, float* __restrict__ out, int64_t rows, int64_t per,
                                        float guidance, float phi) {
  SDGEN_DYNAMIC_SHARED(double, red);
  const int64_t b = blockIdx.x;
  const T* u = eps + b * per;
  const T* c = eps + (rows + b) * per;
  float* g = out + b * per;
  double sum_g = 0, sum_c = 0;
  for (int64_t i = threadIdx.x; i < per; i += blockDim.x) {
    const float eu = to_float(u[i]), ec = to_float(c[i]);
    g[i] = __fadd_rn(eu, __fmul_rn(guidance, ec - eu));
    sum_g += g[i];
    sum_c += ec;
  }
  const double mean_g = block_sum_fixed(sum_g, red) / (double)per, mean_c = block_sum_fixed(sum_c, red) / (double)per;
  double ss_g = 0, ss_c = 0;
  for (int64_t i = threadIdx.x; i < per; i += blockDim.x) {
    const double dg = g[i] - mean_g, dc = to_float(c[i]) - mean_c;
    ss_g += dg * dg;
    ss_c += dc * dc;
  }
  const double var_g = block_sum_fixed(ss_g, red) / (double)(per - 1);
  const double var_c = block_sum_fixed(ss_c, red) / (double)(per - 1);
  const float r = (float)(sqrt(var_c) / sqrt(var_g));
  for (int64_t i = threadIdx.x; i < per; i += blockDim.x)
    g[i] = __fadd_rn(__fmul_rn(phi, __fmul_rn(g[i], r)), __fmul_rn(1.0f - phi, g[i]));
}

// A ControlNet residual at the unit's scale: out = base, plus s·x over [begin, begin + m), s·x and
// the sum in fp32, rounded once (as the CPU's fp32 sum cast back).
template <class T>
__global__ void add_scaled_at_kernel(const T* __restrict__ base, const T* __restrict__ x,
                                     const float* __restrict__ table, const float* __restrict__ step, int64_t columns,
                                     int64_t column, T* __restrict__ out, int64_t n, int64_t begin, int64_t m) {
  const float s = table[(int64_t)step[0] * columns + column];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float b = to_float(base[i]);
    out[i] = i >= begin && i < begin + m ? from_float<T>(__fadd_rn(b, __fmul_rn(s, to_float(x[i - begin])))) : base[i];
  }
}

}  // namespace

void add_scaled_at(const void* base, const void* x, DType dt, const float* table, const float* step, int64_t columns,
                   int64_t column, void* out, int64_t n, int64_t begin, int64_t m, cudaStream_t s) {
  if (n == 0) return;
  cuda::note_traffic((2.0 * n + m) * dtype_size(dt) + 8);
  if (dt == DType::F32)
    SDGEN_LAUNCH(add_scaled_at_kernel<float>, grid_for(n), dim3(kThreads), 0, s, static_cast<const float*>(base),
                 static_cast<const float*>(x), table, step, columns, column, static_cast<float*>(out), n, begin, m);
  else if (dt == DType::BF16)
    SDGEN_LAUNCH(add_scaled_at_kernel<__nv_bfloat16>, grid_for(n), dim3(kThreads), 0, s,
                 static_cast<const __nv_bfloat16*>(base), static_cast<const __nv_bfloat16*>(x), table, step, columns,
                 column, static_cast<__nv_bfloat16*>(out), n, begin, m);
  else
    SDGEN_LAUNCH(add_scaled_at_kernel<__half>, grid_for(n), dim3(kThreads), 0, s, static_cast<const __half*>(base),
                 static_cast<const __half*>(x), table, step, columns, column, static_cast<__half*>(out), n, begin, m);
}

void guidance_rescale(const void* eps, DType eps_dt, float* out, int64_t rows, int64_t per, float guidance, float phi,
                      cudaStream_t s) {
  if (rows == 0) return;
  cuda::note_traffic(rows * per * (2.0 * dtype_size(eps_dt) + 8.0 + 2.0 * dtype_size(eps_dt) + 8.0));
  const size_t shared = kThreads * sizeof(double);
  if (eps_dt == DType::F32)
    SDGEN_LAUNCH(guidance_rescale_kernel<float>, dim3((unsigned)rows), dim3(kThreads), shared, s,
                 static_cast<const float*>(eps), out, rows, per, guidance, phi);
  else if (eps_dt == DType::BF16)
    SDGEN_LAUNCH(guidance_rescale_kernel<__nv_bfloat16>, dim3((unsigned)rows), dim3(kThreads), shared, s,
                 static_cast<const __nv_bfloat16*>(eps), out, rows, per, guidance, phi);
  else
    SDGEN_LAUNCH(guidance_rescale_kernel<__half>, dim3((unsigned)rows), dim3(kThreads), shared, s,
                 static_cast<const __half*>(eps), out, rows, per, guidance, phi);
}

void denoised(const float* x, const void* eps, DType eps_dt, const float* table, const float* step, float* out,
              int64_t n, bool guided, float guidance, cudaStream_t s) {
  if (n == 0) return;
  cuda::note_traffic(8.0 * n + (guided ? 2.0 : 1.0) * n * dtype_size(eps_dt) + 12);
  if (eps_dt == DType::F32)
    SDGEN_LAUNCH(denoised_kernel<float>, grid_for(n), dim3(kThreads), 0, s, x, static_cast<const float*>(eps), table,
                 step, out, n, (int)guided, guidance);
  else if (eps_dt == DType::BF16)
    SDGEN_LAUNCH(denoised_kernel<__nv_bfloat16>, grid_for(n), dim3(kThreads), 0, s, x,
                 static_cast<const __nv_bfloat16*>(eps), table, step, out, n, (int)guided, guidance);
  else
    SDGEN_LAUNCH(denoised_kernel<__half>, grid_for(n), dim3(kThreads), 0, s, x, static_cast<const __half*>(eps),
                 table, step, out, n, (int)guided, guidance);
}

void inpaint_blend(float* x, const float* mask, const float* x0, const float* noise, const float* table,
                   const float* step, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  cuda::note_traffic(20.0 * n + 12);
  SDGEN_LAUNCH(inpaint_blend_kernel, grid_for(n), dim3(kThreads), 0, s, x, mask, x0, noise, table, step, n);
}

void timestep_embedding_at(const float* timesteps, const float* step, void* y, int64_t n, int64_t dim,
                           DType dt, cudaStream_t s) {
  if (n * dim == 0) return;
  const int half = (int)(dim / 2);
  cuda::note_traffic((double)n * dim * dtype_size(dt) + 8);
  const float neg_log = (float)(-std::log(10000.0));
  if (dt == DType::F32)
    SDGEN_LAUNCH(timestep_embedding_at_kernel<float>, grid_for(n * half), dim3(kThreads), 0, s, timesteps, step,
                 static_cast<float*>(y), (int)n, half, neg_log);
  else if (dt == DType::BF16)
    SDGEN_LAUNCH(timestep_embedding_at_kernel<__nv_bfloat16>, grid_for(n * half), dim3(kThreads), 0, s, timesteps,
                 step, static_cast<__nv_bfloat16*>(y), (int)n, half, neg_log);
  else
    SDGEN_LAUNCH(timestep_embedding_at_kernel<__half>, grid_for(n * half), dim3(kThreads), 0, s, timesteps, step,
                 static_cast<__half*>(y), (int)n, half, neg_log);
}

void scale_repeat_batch(const float* x, const float* divisors, const float* step, void* y, DType to, int64_t n,
                        int times, cudaStream_t s) {
  if (n == 0) return;
  cuda::note_traffic(4.0 * n + (double)n * times * dtype_size(to) + 8);
  const dim3 g = grid_for(n), b(kThreads);
  if (to == DType::F32)
    SDGEN_LAUNCH(scale_repeat_kernel<float>, g, b, 0, s, x, divisors, step, static_cast<float*>(y), n, times);
  else if (to == DType::BF16)
    SDGEN_LAUNCH(scale_repeat_kernel<__nv_bfloat16>, g, b, 0, s, x, divisors, step, static_cast<__nv_bfloat16*>(y), n,
                 times);
  else
    SDGEN_LAUNCH(scale_repeat_kernel<__half>, g, b, 0, s, x, divisors, step, static_cast<__half*>(y), n, times);
}

void sampler_step(float* x, float* state, int K, const void* eps, DType eps_dt, const float* table,
                  const float* noise, float* step, int64_t n, bool guided, float guidance, cudaStream_t s) {
  SDGEN_CHECK(K >= 0 && K <= 4 && (K == 0 || state), "sampler_step: K must be 0..4 with a state buffer");
  if (n > 0) {
    cuda::note_traffic(8.0 * n + (guided ? 2.0 : 1.0) * n * dtype_size(eps_dt) + 8.0 * K * n +
                       (noise ? 4.0 * n : 0.0) + 4.0 * (1 + K) * (3 + K));
    if (eps_dt == DType::F32)
      SDGEN_LAUNCH(sampler_step_kernel<float>, grid_for(n), dim3(kThreads), 0, s, x, state, K,
                   static_cast<const float*>(eps), table, noise, static_cast<const float*>(step), n, (int)guided,
                   guidance);
    else if (eps_dt == DType::BF16)
      SDGEN_LAUNCH(sampler_step_kernel<__nv_bfloat16>, grid_for(n), dim3(kThreads), 0, s, x, state, K,
                   static_cast<const __nv_bfloat16*>(eps), table, noise, static_cast<const float*>(step), n,
                   (int)guided, guidance);
    else
      SDGEN_LAUNCH(sampler_step_kernel<__half>, grid_for(n), dim3(kThreads), 0, s, x, state, K,
                   static_cast<const __half*>(eps), table, noise, static_cast<const float*>(step), n, (int)guided,
                   guidance);
  }
  cuda::note_traffic(8);
  SDGEN_LAUNCH(advance_step_kernel, dim3(1), dim3(32), 0, s, step);
}

}  // namespace kernels
}  // namespace sdgen
