// The sampler's ops on the CPU (ops.h, "sampler"): one unit of a sampler plan, with guidance in
// diffusers' float32 order, ε = ε_u + g·(ε_c − ε_u). Plain loops: a 64×64×4 latent is a few thousand values per step.
#include <cmath>

#include "backend/cpu/cpu_backend.h"

namespace sdgen::cpu {

namespace {
int step_index(const Tensor& step) { return (int)step.f32()[0]; }
}  // namespace

Tensor timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim) {
  const float t = timesteps.f32()[step_index(step)];
  return timestep_embedding(std::vector<float>((size_t)n, t), dim);
}

Tensor scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times) {
  const float d = divisors.f32()[step_index(step)];
  Shape s = x.shape();
  s[0] *= times;
  Tensor y = Tensor::empty(s);
  const size_t n = (size_t)x.numel();
  for (int r = 0; r < times; ++r)
    for (size_t i = 0; i < n; ++i) y.f32()[r * n + i] = x.f32()[i] / d;
  return y;
}

void sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table, const Tensor& noise,
                  Tensor& step, float guidance) {
  const size_t n = (size_t)x.numel();
  const int K = state.defined() ? (int)state.dim(0) : 0, cols = 3 + K;
  const bool guided = eps.dim(0) == 2 * x.dim(0);
  const int u = step_index(step);
  const float* a = table.f32() + (size_t)u * (1 + K) * cols;
  const float* e = eps.f32();
  const float* z = noise.defined() ? noise.f32() + (size_t)u * n : nullptr;
  float* xp = x.f32();
  float* sp = K ? state.f32() : nullptr;
  float v[7], out[5];
  for (size_t i = 0; i < n; ++i) {
    const float eu = e[i];
    v[0] = xp[i];
    v[1] = guided ? eu + guidance * (e[n + i] - eu) : eu;
    for (int k = 0; k < K; ++k) v[2 + k] = sp[k * n + i];
    v[2 + K] = z ? z[i] : 0.0f;
    for (int r = 0; r <= K; ++r) {
      float acc = 0.0f;
      for (int j = 0; j < cols; ++j) acc += a[r * cols + j] * v[j];
      out[r] = acc;
    }
    xp[i] = out[0];
    for (int k = 0; k < K; ++k) sp[k * n + i] = out[1 + k];
  }
  step.f32()[0] += 1.0f;
}

void denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step, float guidance,
              Tensor& out) {
  const size_t n = (size_t)x.numel();
  const bool guided = eps.dim(0) == 2 * x.dim(0);
  const int u = step_index(step);
  const float a = table.f32()[2 * u], b = table.f32()[2 * u + 1];
  const float *xp = x.f32(), *e = eps.f32();
  float* o = out.f32();
  for (size_t i = 0; i < n; ++i) {
    const float eu = e[i];
    const float eg = guided ? eu + guidance * (e[n + i] - eu) : eu;
    const float ax = a * xp[i];
    const float be = b * eg;
    o[i] = ax + be;
  }
}

Tensor guidance_rescale(const Tensor& eps, float guidance, float phi) {
  Shape s = eps.shape();
  s[0] /= 2;
  Tensor out = Tensor::empty(s);
  const size_t rows = (size_t)s[0], per = (size_t)(eps.numel() / eps.dim(0)), n = rows * per;
  const float* e = eps.f32();
  float* o = out.f32();
  for (size_t b = 0; b < rows; ++b) {
    const float *u = e + b * per, *c = e + n + b * per;
    float* g = o + b * per;
    double sum_g = 0, sum_c = 0;
    for (size_t i = 0; i < per; ++i) {
      g[i] = u[i] + guidance * (c[i] - u[i]);
      sum_g += g[i];
      sum_c += c[i];
    }
    const double mean_g = sum_g / (double)per, mean_c = sum_c / (double)per;
    double ss_g = 0, ss_c = 0;
    for (size_t i = 0; i < per; ++i) {
      ss_g += (g[i] - mean_g) * (g[i] - mean_g);
      ss_c += (c[i] - mean_c) * (c[i] - mean_c);
    }
    const float r = (float)(std::sqrt(ss_c / (double)(per - 1)) / std::sqrt(ss_g / (double)(per - 1)));
    for (size_t i = 0; i < per; ++i) {
      const float rescaled = g[i] * r;
      const float a = phi * rescaled, bg = (1.0f - phi) * g[i];
      g[i] = a + bg;
    }
  }
  return out;
}

void inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise, const Tensor& table,
                   const Tensor& step) {
  const int u = step_index(step) - 1;
  const float a = table.f32()[2 * u], b = table.f32()[2 * u + 1];
  const float *m = mask.f32(), *p = x0.f32(), *z = noise.f32();
  float* xp = x.f32();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float ax = a * p[i];
    const float bz = b * z[i];
    const float proper = ax + bz;
    const float keep = (1.0f - m[i]) * proper;
    const float paint = m[i] * xp[i];
    xp[i] = keep + paint;
  }
}

Tensor add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step, int64_t column,
                     int64_t row_offset) {
  const float s = table.f32()[(size_t)step_index(step) * (size_t)table.dim(1) + (size_t)column];
  Tensor out = Tensor::empty(base.shape());
  const size_t n = (size_t)base.numel(), m = (size_t)x.numel();
  const size_t begin = base.dim(0) ? (size_t)row_offset * (n / (size_t)base.dim(0)) : 0;
  const float *b = base.f32(), *xp = x.f32();
  float* o = out.f32();
  for (size_t i = 0; i < n; ++i) o[i] = b[i];
  for (size_t i = 0; i < m; ++i) {
    const float sx = s * xp[i];
    o[begin + i] = b[begin + i] + sx;
  }
  return out;
}

}  // namespace sdgen::cpu
