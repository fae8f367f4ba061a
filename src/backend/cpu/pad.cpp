// Zero padding of an NHWC image (ops::pad) on the host: the numeric truth of kernels/pad.cu. Plain:
// one output element at a time, each either zero or the input element it lands on. Fast: whole
// rows — a run of zeros, the input row with one memcpy, zeros — in parallel over the output rows.
// Elements of any dtype are copied unconverted (zero is all-zero bits in fp32 and fp16).
#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace sdgen::cpu {

namespace {

Tensor pad_plain(const Tensor& x, int top, int left, Tensor& y) {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t Ho = y.dim(1), Wo = y.dim(2);
  const size_t es = dtype_size(x.dtype());
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(y.data());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oy = 0; oy < Ho; ++oy)
      for (int64_t ox = 0; ox < Wo; ++ox)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t iy = oy - top, ix = ox - left;
          char* dst = yp + (((n * Ho + oy) * Wo + ox) * C + c) * es;
          if (iy >= 0 && iy < H && ix >= 0 && ix < W)
            std::memcpy(dst, xp + (((n * H + iy) * W + ix) * C + c) * es, es);
          else
            std::memset(dst, 0, es);
        }
  return y;
}

Tensor pad_fast(const Tensor& x, int top, int left, Tensor& y) {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t Ho = y.dim(1), Wo = y.dim(2);
  const size_t px = (size_t)C * dtype_size(x.dtype());
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(y.data());
#pragma omp parallel for schedule(static) if (N * Ho * Wo * (int64_t)px >= (1 << 16))
  for (int64_t row = 0; row < N * Ho; ++row) {
    const int64_t n = row / Ho, iy = row % Ho - top;
    char* dst = yp + row * Wo * px;
    if (iy < 0 || iy >= H) {
      std::memset(dst, 0, (size_t)Wo * px);
      continue;
    }
    std::memset(dst, 0, (size_t)left * px);
    std::memcpy(dst + left * px, xp + (n * H + iy) * W * px, (size_t)W * px);
    std::memset(dst + (left + W) * px, 0, (size_t)(Wo - left - W) * px);
  }
  return y;
}

}  // namespace

Tensor pad(const Tensor& x, int top, int bottom, int left, int right, bool plain) {
  Tensor y = Tensor::empty({x.dim(0), x.dim(1) + top + bottom, x.dim(2) + left + right, x.dim(3)}, x.dtype());
  if (y.numel() == 0) return y;
  return plain ? pad_plain(x, top, left, y) : pad_fast(x, top, left, y);
}

}  // namespace sdgen::cpu
