// Scalar twins of torch's avx_mathfun.h log/sincos (see cephes_math.h). Every rounding step is
// spelled out: a plain * or + is one rounded float operation and std::fma marks the pairs that
// torch's compiled kernel fuses (found by compiling that header with GCC 12 -O2 -mavx2 -mfma, as
// torch 2.9.1's wheel was built with GCC 13.3 in GNU mode where contraction is on, reading the
// assembly, and confirming bit-exact agreement with torch.randn on millions of values). The
// compiler must not fuse anything else: as written, no product feeds a sum outside the fma calls,
// and contraction is also switched off for this file so later edits cannot silently fuse.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "core/cephes_math.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace sdgen::cephes {

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The header stores its constants as double literals converted to float; keep that rounding path.
constexpr float kSqrtHalf = (float)0.707106781186547524;
constexpr float kLogP[9] = {(float)7.0376836292E-2,  (float)-1.1514610310E-1, (float)1.1676998740E-1,
                            (float)-1.2420140846E-1, (float)1.4249322787E-1,  (float)-1.6668057665E-1,
                            (float)2.0000714765E-1,  (float)-2.4999993993E-1, (float)3.3333331174E-1};
constexpr float kLogQ1 = (float)-2.12194440e-4;
constexpr float kLogQ2 = (float)0.693359375;

constexpr float kMinusDP1 = (float)-0.78515625;
constexpr float kMinusDP2 = (float)-2.4187564849853515625e-4;
constexpr float kMinusDP3 = (float)-3.77489497744594108e-8;
constexpr float kSinP0 = (float)-1.9515295891E-4;
constexpr float kSinP1 = (float)8.3321608736E-3;
constexpr float kSinP2 = (float)-1.6666654611E-1;
constexpr float kCosP0 = (float)2.443315711809948E-005;
constexpr float kCosP1 = (float)-1.388731625493765E-003;
constexpr float kCosP2 = (float)4.166664568298827E-002;
constexpr float kFourOverPi = (float)1.27323954473516;

}  // namespace

float logf_torch_avx2(float x) {
  if (!(x > 0.0f)) return std::nanf("");
  // Denormals are clamped to the smallest normal, as the vector code does.
  if (x < float_of(0x00800000u)) x = float_of(0x00800000u);
  // Split x = m·2^e with m in [0.5, 1) by bit manipulation (frexp-style).
  const uint32_t u = bits_of(x);
  const int32_t exponent = (int32_t)(u >> 23) - 0x7f;
  float m = float_of((u & ~0x7f800000u) | bits_of(0.5f));
  float e = (float)exponent + 1.0f;
  // For m < sqrt(1/2) use 2m - 1 and e - 1, keeping the polynomial argument in [-0.29, 0.41].
  const bool below = m < kSqrtHalf;
  const float tmp = below ? m : 0.0f;
  m = m - 1.0f;
  e = e - (below ? 1.0f : 0.0f);
  m = m + tmp;

  const float z = m * m;
  float y = kLogP[0];
  for (int i = 1; i < 9; ++i) y = std::fma(y, m, kLogP[i]);
  y = y * m;
  y = std::fma(y, z, e * kLogQ1);
  y = std::fma(-z, 0.5f, y);  // z·0.5 is exact, so fused or not gives the same value
  m = m + y;
  return std::fma(e, kLogQ2, m);
}

void sincosf_torch_avx2(float x, float* s, float* c) {
  const bool negative = std::signbit(x);
  x = std::fabs(x);
  // Octant index j = trunc(x·4/π) rounded up to even, so the reduced argument is within ±π/4.
  int32_t j = (int32_t)(x * kFourOverPi);
  j = (j + 1) & ~1;
  const float y = (float)j;
  const bool sin_negative = negative != ((j & 4) != 0);
  const bool cos_negative = ((j - 2) & 4) == 0;
  const bool use_sin_poly_for_sin = (j & 2) == 0;

  // Cody–Waite reduction x - j·π/4 with π/4 split in three parts.
  x = std::fma(y, kMinusDP1, x);
  x = std::fma(y, kMinusDP2, x);
  x = std::fma(y, kMinusDP3, x);

  const float z = x * x;
  // cos polynomial on [-π/4, π/4].
  float yc = kCosP0;
  yc = std::fma(yc, z, kCosP1);
  yc = std::fma(yc, z, kCosP2);
  yc = yc * z;
  yc = std::fma(yc, z, -(z * 0.5f));
  yc = yc + 1.0f;
  // sin polynomial on [-π/4, π/4].
  float ys = kSinP0;
  ys = std::fma(ys, z, kSinP1);
  ys = std::fma(ys, z, kSinP2);
  ys = ys * z;
  ys = std::fma(x, ys, x);

  // The vector code selects with masks and then adds the masked-out +0 to each result; do the
  // same so signed zeros come out identically.
  const float sin_from_sin = use_sin_poly_for_sin ? ys : 0.0f;
  const float sin_from_cos = use_sin_poly_for_sin ? 0.0f : yc;
  const float sin_v = sin_from_cos + sin_from_sin;
  const float cos_v = (yc - sin_from_cos) + (ys - sin_from_sin);
  *s = sin_negative ? -sin_v : sin_v;
  *c = cos_negative ? -cos_v : cos_v;
}

}  // namespace sdgen::cephes
