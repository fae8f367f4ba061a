// torch.randn-compatible normal sampler (see rng.h): mt19937 uniforms plus torch's Box–Muller paths.
#include "core/rng.h"

#include <cmath>

#include "core/cephes_math.h"

namespace sdgen {

namespace {
constexpr double kPi = 3.14159265358979323846;

// PyTorch's uniform_real_distribution<float>: 24 random bits scaled by 2^-24 (exact in float).
float uniform24(uint32_t r) { return (float)(r & 0xFFFFFFu) * (1.0f / 16777216.0f); }

// PyTorch's normal_fill_16_AVX2 (the kernel x86-64 builds run for float tensors of >= 16 values):
// Box–Muller on 16 uniforms in place, in float, with the Cephes log/sincos of avx_mathfun.h. The
// final fmadd(n, std, mean) with std = 1, mean = 0 is exact and left out.
void normal_fill_16(float* d) {
  const float two_pi = (float)(2.0 * kPi);
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];
    const float u2 = d[j + 8];
    const float radius = std::sqrt(-2.0f * cephes::logf_torch_avx2(u1));
    const float theta = two_pi * u2;
    float s, c;
    cephes::sincosf_torch_avx2(theta, &s, &c);
    d[j] = radius * c;
    d[j + 8] = radius * s;
  }
}
}  // namespace

TorchCpuRandn::TorchCpuRandn(uint64_t seed) : mt_((uint32_t)(seed & 0xFFFFFFFFu)) {}

double TorchCpuRandn::next_double_normal() {
  if (has_cached_normal_) {
    has_cached_normal_ = false;
    return cached_normal_;
  }
  // 53-bit uniforms from two 32-bit draws (first draw is the high word).
  auto uniform53 = [this]() {
    uint64_t hi = next_u32();
    uint64_t lo = next_u32();
    uint64_t v = (hi << 32) | lo;
    return (double)(v & ((1ULL << 53) - 1)) * std::ldexp(1.0, -53);
  };
  const double u1 = uniform53();
  const double u2 = uniform53();
  const double r = std::sqrt(-2.0 * std::log1p(-u2));
  const double theta = 2.0 * kPi * u1;
  cached_normal_ = r * std::sin(theta);
  has_cached_normal_ = true;
  return r * std::cos(theta);
}

std::vector<float> TorchCpuRandn::randn(size_t n) {
  std::vector<float> d(n);
  if (n < 16) {
    for (size_t i = 0; i < n; ++i) d[i] = (float)next_double_normal();
    return d;
  }
  for (size_t i = 0; i < n; ++i) d[i] = uniform24(next_u32());
  for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(&d[i]);
  if (n % 16 != 0) {
    float* tail = &d[n - 16];
    for (int i = 0; i < 16; ++i) tail[i] = uniform24(next_u32());
    normal_fill_16(tail);
  }
  return d;
}

}  // namespace sdgen
