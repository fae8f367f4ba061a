// Seed-compatible random numbers. TorchCpuRandn reproduces torch.randn with a CPU generator
// (torch.Generator("cpu").manual_seed(seed)), which is what diffusers draws the initial latents
// with, so a seed gives diffusers' images. Bit-exact to x86-64 torch (the AVX2/AVX512 kernel, as
// the PyPI wheels run it); torch builds without that kernel (aarch64, ATEN_CPU_CAPABILITY=default)
// use a scalar path with libm log/sin/cos and may differ in the last bits for >= 16 values.
// Algorithm (torch's CPU normal sampler, as its source and the goldens of tests/data/golden/randn
// show it):
//   - mt19937 seeded with the low 32 bits of the seed;
//   - >= 16 values: uniforms (mt() & 0xFFFFFF)·2^-24 in flat order, then Box–Muller per 16-block
//     (u1 = 1 - d[j], u2 = d[j+8]) in float with Cephes log/sincos (core/cephes_math.h); a tail
//     that is not a multiple of 16 redraws and transforms the last 16 values;
//   - < 16 values: double-precision Box–Muller from 53-bit uniforms, the second value of each pair
//     cached in the generator for the next draw.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace sdgen {

class TorchCpuRandn {
 public:
  explicit TorchCpuRandn(uint64_t seed);
  // n standard normal floats, as one torch.randn call of numel n.
  std::vector<float> randn(size_t n);

 private:
  uint32_t next_u32() { return (uint32_t)mt_(); }
  double next_double_normal();
  std::mt19937 mt_;
  bool has_cached_normal_ = false;
  double cached_normal_ = 0;
};

}  // namespace sdgen
