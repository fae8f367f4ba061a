// CPU data-movement ops (upsample, concat, embedding lookup) and the sinusoidal timestep
// embedding. The movers copy elements of whatever dtype without converting them.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace sdgen::cpu {

Tensor upsample_nearest2x(const Tensor& x, bool plain) {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const size_t es = dtype_size(x.dtype()), px = (size_t)C * es;
  Tensor y = Tensor::empty({N, 2 * H, 2 * W, C}, x.dtype());
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(y.data());
  // Output pixel (oy, ox) is input pixel (oy/2, ox/2).
#pragma omp parallel for schedule(static) if (!plain && N * H > 1)
  for (int64_t nh = 0; nh < N * H * 2; ++nh) {
    const int64_t n = nh / (2 * H), oy = nh % (2 * H);
    const char* src = xp + ((n * H + oy / 2) * W) * px;
    char* dst = yp + nh * 2 * W * px;
    for (int64_t ox = 0; ox < 2 * W; ++ox) std::memcpy(dst + ox * px, src + (ox / 2) * px, px);
  }
  return y;
}

Tensor concat_channels(const Tensor& a, const Tensor& b, bool plain) {
  const int64_t Ca = a.dim(-1), Cb = b.dim(-1);
  const int64_t rows = Ca ? a.numel() / Ca : (Cb ? b.numel() / Cb : 0);
  const size_t es = dtype_size(a.dtype());
  Shape shape = a.shape();
  shape.back() = Ca + Cb;
  Tensor y = Tensor::empty(shape, a.dtype());
  const char* ap = static_cast<const char*>(a.data());
  const char* bp = static_cast<const char*>(b.data());
  char* yp = static_cast<char*>(y.data());
#pragma omp parallel for schedule(static) if (!plain && rows * (Ca + Cb) >= (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(yp + r * (Ca + Cb) * es, ap + r * Ca * es, (size_t)Ca * es);
    std::memcpy(yp + (r * (Ca + Cb) + Ca) * es, bp + r * Cb * es, (size_t)Cb * es);
  }
  return y;
}

Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table) {
  const int64_t D = table.dim(1), L = n ? (int64_t)ids.size() / n : 0;
  const size_t row = (size_t)D * dtype_size(table.dtype());
  Tensor y = Tensor::empty({n, L, D}, table.dtype());
  const char* tp = static_cast<const char*>(table.data());
  char* yp = static_cast<char*>(y.data());
  for (size_t i = 0; i < ids.size(); ++i) std::memcpy(yp + i * row, tp + (size_t)ids[i] * row, row);
  return y;
}

// diffusers get_timestep_embedding (flip_sin_to_cos=True, downscale_freq_shift=0), evaluated in
// its fp32 order: exponent = (-ln 10000 · i) / half, freq = exp(exponent), arg = t · freq, then
// [cos(arg), sin(arg)]. Matching the rounding order matters: at t ≈ 1000 the argument's last bit
// is worth ~6e-5 rad.
Tensor timestep_embedding(const std::vector<float>& t, int dim) {
  const int64_t n = (int64_t)t.size(), half = dim / 2;
  Tensor y = Tensor::empty({n, dim});
  float* yp = y.f32();
  const float neg_log = (float)(-std::log(10000.0));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t i = 0; i < half; ++i) {
      const float exponent = ((float)i * neg_log) / (float)half;
      const float arg = t[b] * std::exp(exponent);
      yp[b * dim + i] = std::cos(arg);
      yp[b * dim + half + i] = std::sin(arg);
    }
  }
  return y;
}

}  // namespace sdgen::cpu
