// torch.randn-compatible normal samplers (see rng.h): mt19937 uniforms plus torch's CPU Box–Muller paths,
// and Philox4x32-10 plus curand's Box–Muller as torch draws on CUDA; LatentNoise over either.
#include "core/rng.h"

#include <cmath>
#include <stdexcept>

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

namespace sdgen {

std::array<uint32_t, 4> PhiloxRandn::philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;    // round multipliers
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule: golden ratio, sqrt(3)-1
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    const uint64_t p0 = (uint64_t)kMul0 * c[0];
    const uint64_t p1 = (uint64_t)kMul1 * c[2];
    c = {(uint32_t)(p1 >> 32) ^ c[1] ^ k[0], (uint32_t)p1, (uint32_t)(p0 >> 32) ^ c[3] ^ k[1], (uint32_t)p0};
  }
  return c;
}

float PhiloxRandn::box_muller_first(uint32_t x, uint32_t y) {
  // curand's constants (curand_normal.h): 2^-32 as the float 2.3283064e-10f (exactly 2^-32) and its
  // product with the float 2π, rounded to float. nvcc fuses x·c + c/2 into one FMA.
  constexpr float kInv = 2.3283064e-10f;
  constexpr float kInv2Pi = 2.3283064e-10f * 6.2831855f;
  const float u = std::fma((float)x, kInv, kInv / 2);
  const float v = std::fma((float)y, kInv2Pi, kInv2Pi / 2);
  const float s = std::sqrt(-2.0f * (float)std::log((double)u));
  return (float)std::sin((double)v) * s;
}

std::vector<float> PhiloxRandn::randn(size_t n) {
  std::vector<float> d(n);
  const std::array<uint32_t, 2> key = {(uint32_t)seed_, (uint32_t)(seed_ >> 32)};
  for (size_t i = 0; i < n; ++i) {
    const std::array<uint32_t, 4> r = philox4x32_10(
        {(uint32_t)offset_, (uint32_t)(offset_ >> 32), (uint32_t)i, (uint32_t)((uint64_t)i >> 32)}, key);
    d[i] = box_muller_first(r[0], r[1]);
  }
  ++offset_;
  return d;
}

LatentNoise::LatentNoise(RngKind kind, SeedMode mode, uint64_t seed, int images)
    : kind_(kind), mode_(mode), seed_(seed), images_(images) {
  if (images < 1) throw std::invalid_argument("LatentNoise: images must be >= 1");
  const int generators = mode == SeedMode::PerImage ? images : 1;
  for (int i = 0; i < generators; ++i) {
    if (kind == RngKind::TorchCpu)
      cpu_.emplace_back(seed + (uint64_t)i);
    else
      philox_.emplace_back(seed + (uint64_t)i);
  }
}

std::vector<float> LatentNoise::draw(size_t per_image) {
  auto one = [this](size_t g, size_t n) {
    return kind_ == RngKind::TorchCpu ? cpu_[g].randn(n) : philox_[g].randn(n);
  };
  if (mode_ == SeedMode::Batch) return one(0, (size_t)images_ * per_image);
  std::vector<float> out;
  out.reserve((size_t)images_ * per_image);
  for (int i = 0; i < images_; ++i) {
    const std::vector<float> v = one(i, per_image);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<float> LatentNoise::draw_shared(size_t per_image) {
  if (mode_ == SeedMode::PerImage) return draw(per_image);
  return kind_ == RngKind::TorchCpu ? cpu_[0].randn(per_image) : philox_[0].randn(per_image);
}

uint64_t LatentNoise::image_seed(int i) const {
  return mode_ == SeedMode::PerImage ? seed_ + (uint64_t)i : seed_;
}

const char* rng_kind_name(RngKind k) { return k == RngKind::TorchCpu ? "torch-cpu" : "philox"; }
const char* seed_mode_name(SeedMode m) { return m == SeedMode::Batch ? "batch" : "per-image"; }

bool parse_rng_kind(const std::string& s, RngKind* out) {
  if (s == "torch-cpu") *out = RngKind::TorchCpu;
  else if (s == "philox") *out = RngKind::Philox;
  else return false;
  return true;
}

bool parse_seed_mode(const std::string& s, SeedMode* out) {
  if (s == "batch") *out = SeedMode::Batch;
  else if (s == "per-image") *out = SeedMode::PerImage;
  else return false;
  return true;
}

}  // namespace sdgen
