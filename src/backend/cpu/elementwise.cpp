// CPU pointwise ops: activations, geglu, add, add_channel, scale and the fp32 <-> fp16 cast.
// Plain: PyTorch's formulas on libm (expf, erff). Fast: the same formulas on the vectorizable
// approximations of cpu_math.h (within a few ulp), loops split over threads.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"
#include "sdgen/half.h"

namespace sdgen::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;
// Elements per parallel work item of the fast activations.
constexpr int64_t kSpan = int64_t(1) << 14;

SDGEN_CPU_CLONES
void unary_span(const float* x, float* y, int64_t n, Backend::Unary op) {
  switch (op) {
    case Backend::Unary::kSilu:
      for (int64_t i = 0; i < n; ++i) y[i] = silu_fast(x[i]);
      break;
    case Backend::Unary::kQuickGelu:
      for (int64_t i = 0; i < n; ++i) y[i] = quick_gelu_fast(x[i]);
      break;
    case Backend::Unary::kGelu:
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_fast(x[i]);
      break;
    case Backend::Unary::kRelu:
      for (int64_t i = 0; i < n; ++i) y[i] = relu_f(x[i]);
      break;
    case Backend::Unary::kTanh:  // libm's: no cheaper form is exact enough, and the inputs are few
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      break;
  }
}

SDGEN_CPU_CLONES
void geglu_row(const float* value, const float* gate, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = value[i] * gelu_fast(gate[i]);
}
}  // namespace

// PyTorch's forms: silu x / (1 + e^-x); sigmoid 1 / (1 + e^-z); gelu x·0.5·(1 + erf(x/√2)).
float silu_f(float x) { return x / (1.0f + std::exp(-x)); }
float quick_gelu_f(float x) { return x * (1.0f / (1.0f + std::exp(-1.702f * x))); }
float gelu_f(float x) { return x * 0.5f * (1.0f + std::erf(x * 0.70710678118654752f)); }
float tanh_f(float x) { return std::tanh(x); }

Tensor unary(const Tensor& x, Backend::Unary op, bool plain) {
  const int64_t n = x.numel();
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  float* yp = y.f32();
  if (!plain) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i0 = 0; i0 < n; i0 += kSpan)
      unary_span(xp + i0, yp + i0, std::min(kSpan, n - i0), op);
    return y;
  }
  float (*f)(float) = op == Backend::Unary::kSilu        ? silu_f
                      : op == Backend::Unary::kQuickGelu ? quick_gelu_f
                      : op == Backend::Unary::kRelu      ? relu_f
                      : op == Backend::Unary::kTanh      ? tanh_f
                                                         : gelu_f;
  for (int64_t i = 0; i < n; ++i) yp[i] = f(xp[i]);
  return y;
}

Tensor geglu(const Tensor& x, bool plain) {
  const int64_t C2 = x.dim(-1), C = C2 / 2;
  const int64_t M = C2 ? x.numel() / C2 : 0;
  Shape shape = x.shape();
  shape.back() = C;
  Tensor y = Tensor::empty(shape);
  const float* xp = x.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (!plain && M * C >= kParallelMin)
  for (int64_t m = 0; m < M; ++m) {
    const float* value = xp + m * C2;
    const float* gate = value + C;
    if (!plain) {
      geglu_row(value, gate, yp + m * C, C);
      continue;
    }
    for (int64_t c = 0; c < C; ++c) yp[m * C + c] = value[c] * gelu_f(gate[c]);
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b, bool plain) {
  const int64_t n = a.numel();
  Tensor y = Tensor::empty(a.shape());
  const float* ap = a.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (!plain && n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) yp[i] = ap[i] + bp[i];
  return y;
}

Tensor add_channel(const Tensor& x, const Tensor& b, bool plain) {
  const int64_t N = x.dim(0), C = x.dim(-1);
  const int64_t rows = C ? x.numel() / C : 0, per_image = N ? rows / N : 0;
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (!plain && rows * C >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* br = bp + (r / per_image) * C;
    for (int64_t c = 0; c < C; ++c) yp[r * C + c] = xp[r * C + c] + br[c];
  }
  return y;
}

Tensor scale(const Tensor& x, float s, bool plain) {
  const int64_t n = x.numel();
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (!plain && n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) yp[i] = xp[i] * s;
  return y;
}

Tensor cast(const Tensor& x, DType dtype, bool plain) {
  const int64_t n = x.numel();
  if (x.dtype() == dtype) return x.clone();
  Tensor y = Tensor::empty(x.shape(), dtype);
  // One function for plain and fast: the conversions are exact (f16.cpp), only threading differs.
  const int64_t spans = (n + kSpan - 1) / kSpan;
#pragma omp parallel for schedule(static) if (!plain && n >= kParallelMin)
  for (int64_t s = 0; s < spans; ++s) {
    const int64_t i0 = s * kSpan, len = std::min(kSpan, n - i0);
    if (x.dtype() == DType::F32) {
      narrow(dtype, x.data_as<float>() + i0, y.data_as<uint16_t>() + i0, len);
    } else if (dtype == DType::F32) {
      widen(x.dtype(), x.data_as<uint16_t>() + i0, y.data_as<float>() + i0, len);
    } else {  // fp16 <-> bf16 through fp32 (widening is exact, so one rounding)
      float buf[kSpan];
      widen(x.dtype(), x.data_as<uint16_t>() + i0, buf, len);
      narrow(dtype, buf, y.data_as<uint16_t>() + i0, len);
    }
  }
  return y;
}

}  // namespace sdgen::cpu
