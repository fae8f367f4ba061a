// Branch-free fp32 exp and GELU/SiLU for the fast CPU paths. libm's expf/erff are scalar calls
// (~6 and ~20 ns each here), which made GEGLU and softmax cost as much as the GEMMs around them;
// written as straight-line arithmetic these vectorize (16 lanes with the x86-64-v4 clones).
// Accuracy: exp ≈ 2 ulp, erfc ≈ 1e-7 relative; the plain paths keep libm as the reference.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace sdgen::cpu {

// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r from its degree-7 Taylor series (truncation < 1e-8
// relative), 2^n put into the exponent bits. Below -87 the result is 0 (expf is subnormal there),
// above 88.3 +inf (expf overflows at 88.72), NaN stays NaN.
inline float exp_approx(float x) {
  // NaN is computed as 0 (its bits would shift a negative exponent) and returned as NaN below.
  const float xc = x < -87.0f ? -87.0f : (x > 88.3f ? 88.3f : (x == x ? x : 0.0f));
  const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest integer
  const float r = (xc - n * 0.693145752f) - n * 1.42860677e-6f;    // ln2 split hi + lo
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float e = p * scale;
  const float inf = std::numeric_limits<float>::infinity();
  return x != x ? x : (x < -87.0f ? 0.0f : (x > 88.3f ? inf : e));
}

// erfc(z) for z ≥ 0 as t·exp(-z² + P(t)), t = 1/(1 + z/2), P a degree-10 Chebyshev fit (made
// with mpmath.chebyfit) of log(erfc(z)/t) + z² over t in [0, 1], max error 1e-7. Relative
// accuracy holds in the far tail too, where 1 - erf(z) would cancel.
inline float erfc_nonneg(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.004769650984f;
  p = p * t + 0.1463613845f;
  p = p * t - 0.7684580855f;
  p = p * t + 1.423171945f;
  p = p * t - 1.086955619f;
  p = p * t + 0.2567150674f;
  p = p * t - 0.1800615123f;
  p = p * t + 0.09577241224f;
  p = p * t + 0.3741760882f;
  p = p * t + 1.000020943f;
  p = p * t - 1.26551221f;
  return t * exp_approx(p - z * z);
}

// x·Φ(x) with Φ(x) = erfc(-x/√2)/2.
inline float gelu_fast(float x) {
  const float e = erfc_nonneg(std::fabs(x) * 0.70710678f);
  return x * (x >= 0.0f ? 1.0f - 0.5f * e : 0.5f * e);
}

// torch.relu: a NaN passes through (x > 0 is false for it, so it is tested apart).
inline float relu_f(float x) { return x > 0.0f ? x : (x != x ? x : 0.0f); }
inline float silu_fast(float x) { return x / (1.0f + exp_approx(-x)); }
inline float quick_gelu_fast(float x) { return x * (1.0f / (1.0f + exp_approx(-1.702f * x))); }

}  // namespace sdgen::cpu
