// CPU group norm and layer norm, as PyTorch defines them: biased variance, (x -
// mean)/sqrt(var+eps), then the per-channel affine. Statistics are always two-pass in double: SD
// activations reach |x| ~ 1e3 with small variance in places, where a one-pass fp32 E[x²]-E[x]²
// loses every digit.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"

namespace sdgen::cpu {

namespace {

// Plain: one (image, group) at a time, straight over its elements.
void group_norm_plain(const float* x, const float* gamma, const float* beta, int64_t N, int64_t S,
                      int64_t C, int64_t G, float eps, bool silu, float* y) {
  const int64_t Cg = C / G;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      const float* xb = x + n * S * C + g * Cg;
      float* yb = y + n * S * C + g * Cg;
      double sum = 0.0;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < Cg; ++c) sum += xb[s * C + c];
      const double mean = sum / (double)(S * Cg);
      double sq = 0.0;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < Cg; ++c) {
          const double d = xb[s * C + c] - mean;
          sq += d * d;
        }
      const double rstd = 1.0 / std::sqrt(sq / (double)(S * Cg) + (double)eps);
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < Cg; ++c) {
          const int64_t ch = g * Cg + c;
          float v = (float)((xb[s * C + c] - mean) * rstd * gamma[ch] + beta[ch]);
          yb[s * C + c] = silu ? silu_f(v) : v;
        }
    }
  }
}

// Per-channel Σ over the S rows of one image (Σ (x - center[c])² when center is given), rows split
// over threads with a private double accumulator each. In NHWC a row is the C channels of a pixel,
// so the inner loop is contiguous and vectorizes.
std::vector<double> channel_sums(const float* x, int64_t S, int64_t C, const double* center) {
  std::vector<double> total((size_t)C, 0.0);
#pragma omp parallel
  {
    std::vector<double> acc((size_t)C, 0.0);
#pragma omp for schedule(static) nowait
    for (int64_t s = 0; s < S; ++s) {
      const float* row = x + s * C;
      if (center) {
        for (int64_t c = 0; c < C; ++c) {
          const double d = row[c] - center[c];
          acc[c] += d * d;
        }
      } else {
        for (int64_t c = 0; c < C; ++c) acc[c] += row[c];
      }
    }
#pragma omp critical
    for (int64_t c = 0; c < C; ++c) total[c] += acc[c];
  }
  return total;
}

SDGEN_CPU_CLONES
void apply_row(const float* x, const float* m_hi, const float* m_lo, const float* a,
               const float* beta, float* y, int64_t C, bool silu) {
  for (int64_t c = 0; c < C; ++c) y[c] = ((x[c] - m_hi[c]) - m_lo[c]) * a[c] + beta[c];
  if (silu)
    for (int64_t c = 0; c < C; ++c) y[c] = silu_fast(y[c]);
}

void group_norm_fast(const float* x, const float* gamma, const float* beta, int64_t N, int64_t S,
                     int64_t C, int64_t G, float eps, bool silu, float* y) {
  const int64_t Cg = C / G;
  const double count = (double)(S * Cg);
  std::vector<double> mean_c((size_t)C);
  std::vector<float> m_hi((size_t)C), m_lo((size_t)C), a((size_t)C);
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * S * C;
    // Pass 1: group means, broadcast back to channels for pass 2.
    std::vector<double> sums = channel_sums(xn, S, C, nullptr);
    for (int64_t g = 0; g < G; ++g) {
      double s = 0.0;
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) s += sums[c];
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) mean_c[c] = s / count;
    }
    // Pass 2: Σ (x - mean)², then the per-channel factor a = rstd·gamma.
    std::vector<double> sq = channel_sums(xn, S, C, mean_c.data());
    for (int64_t g = 0; g < G; ++g) {
      double s = 0.0;
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) s += sq[c];
      const double rstd = 1.0 / std::sqrt(s / count + (double)eps);
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) a[c] = (float)(rstd * gamma[c]);
    }
    // The mean as a float pair hi + lo: x - hi is exact when x is near the mean, so
    // (x - hi) - lo keeps the deviation's digits where folding the mean into a bias
    // (x·a + (beta - mean·a)) would cancel them: at mean 300, σ 0.1 that lost 1e-2 relative.
    for (int64_t c = 0; c < C; ++c) {
      m_hi[c] = (float)mean_c[c];
      m_lo[c] = (float)(mean_c[c] - (double)m_hi[c]);
    }
    float* yn = y + n * S * C;
#pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < S; ++s)
      apply_row(xn + s * C, m_hi.data(), m_lo.data(), a.data(), beta, yn + s * C, C, silu);
  }
}

}  // namespace

Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                  bool fuse_silu, bool plain) {
  const int64_t N = x.dim(0), C = x.dim(-1);
  const int64_t S = (N && C) ? x.numel() / (N * C) : 0;
  Tensor y = Tensor::empty(x.shape());
  if (y.numel() == 0) return y;
  if (plain) {
    group_norm_plain(x.f32(), gamma.f32(), beta.f32(), N, S, C, groups, eps, fuse_silu, y.f32());
  } else {
    group_norm_fast(x.f32(), gamma.f32(), beta.f32(), N, S, C, groups, eps, fuse_silu, y.f32());
  }
  return y;
}

// One code path: a row of ≤ a few thousand values is cheap to do exactly, so the fast mode only
// adds threads over rows (values are identical in both modes).
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, bool plain) {
  const int64_t C = x.dim(-1);
  const int64_t M = C ? x.numel() / C : 0;
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  const float* gp = gamma.f32();
  const float* bp = beta.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (!plain)
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = xp + m * C;
    float* yr = yp + m * C;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) sum += xr[c];
    const double mean = sum / (double)C;
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t c = 0; c < C; ++c) sq += (xr[c] - mean) * (xr[c] - mean);
    const double rstd = 1.0 / std::sqrt(sq / (double)C + (double)eps);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = (float)((xr[c] - mean) * rstd * gp[c] + bp[c]);
  }
  return y;
}

}  // namespace sdgen::cpu
