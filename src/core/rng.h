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
//
// PhiloxRandn reproduces torch.randn on a CUDA generator (torch.Generator("cuda").manual_seed(seed)),
// computed on the CPU, so on any backend; the convention of A1111's "NV" RNG source
// (modules/rng_philox.py) and stable-diffusion.cpp's --rng cuda. torch's CUDA normal kernel gives
// thread t a curand Philox4x32-10 state with key (seed lo, seed hi) and counter (offset/4 lo,
// offset/4 hi, t, 0); its first curand4() call's outputs (x, y, z, w) become four normals by
// curand's Box–Muller, of which element t takes the first: sin(v)·sqrt(-2 ln u), with
// u = x·2^-32 + 2^-33 and v = y·(2π·2^-32) + π·2^-32, all in float. This holds while the tensor has
// no more elements than the kernel has threads (its grid is capped at SMs × 2048/256 blocks of 256:
// 270336 threads on an H100/H200, 221184 on an A100), which covers SD latents up to 4×4×128×128;
// past that torch's element order depends on the GPU, and this class keeps A1111's order. Each later
// draw of the generator advances the counter by one (torch adds 4 to its offset per call of those
// sizes; A1111's offset += 1).
// Precision: u and v are formed as curand does (uint32 → float, one fused multiply-add); log and
// sin are computed correctly rounded to float. On the device curand uses CUDA's logf (≤ 1 ulp) and
// the __sincosf hardware approximation, so single values may differ in the last bits: bit-equality
// with torch on CUDA is unverified until tests/reference/make_philox_golden.py has been run once on a
// GPU (tests/test_rng.cpp, Rng.PhiloxMatchesCudaGoldenWhenPresent).
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <string>
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

class PhiloxRandn {
 public:
  explicit PhiloxRandn(uint64_t seed) : seed_(seed) {}
  // n standard normal floats, as one torch.randn call of numel n on the CUDA generator.
  std::vector<float> randn(size_t n);

  // Philox4x32-10 (Salmon et al. 2011; Random123 and curand): 10 rounds on counter `ctr` with key
  // `key` (Weyl key schedule).
  static std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key);
  // curand's Box–Muller, first output: sin(v)·sqrt(-2 ln u) from two 32-bit draws (see above).
  static float box_muller_first(uint32_t x, uint32_t y);

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;  // in counter steps (torch's philox offset / 4)
};

// How noise is drawn, and from how many generators.
enum class RngKind { TorchCpu, Philox };  // --rng torch-cpu | philox
enum class SeedMode { Batch, PerImage };  // --seed-mode batch | per-image

// The generator(s) of one generation, drawn in diffusers' order: the initial latents first, then
// (stochastic samplers) each step's noise, every draw continuing the same streams.
class LatentNoise {
 public:
  LatentNoise(RngKind kind, SeedMode mode, uint64_t seed, int images);
  // One draw of shape [images, per_image] (NCHW order within an image): Batch mode = one torch.randn
  // of images*per_image values from the single generator; PerImage mode = generator i (seed+i) draws
  // per_image values for image i (diffusers' randn_tensor with a list of generators). Successive calls
  // continue the generators' streams.
  std::vector<float> draw(size_t per_image);
  // A draw for something all images share (img2img's one picture, encoded once: diffusers samples
  // its latent distribution with the generator before the initial noise): Batch mode = one
  // torch.randn of per_image values; PerImage mode = as draw(), each generator per_image values
  // (each image has its own sample, as when it is generated alone with its seed).
  std::vector<float> draw_shared(size_t per_image);
  // The seed that regenerates image i alone: seed+i in PerImage mode, seed in Batch mode.
  uint64_t image_seed(int i) const;
  RngKind kind() const { return kind_; }
  SeedMode mode() const { return mode_; }
  int images() const { return images_; }

 private:
  RngKind kind_;
  SeedMode mode_;
  uint64_t seed_;
  int images_;
  std::vector<TorchCpuRandn> cpu_;  // one (Batch) or one per image (PerImage)
  std::vector<PhiloxRandn> philox_;
};

// Names as the CLI and metadata spell them: "torch-cpu"/"philox", "batch"/"per-image". The parsers
// return false for any other text.
const char* rng_kind_name(RngKind k);
const char* seed_mode_name(SeedMode m);
bool parse_rng_kind(const std::string& s, RngKind* out);
bool parse_seed_mode(const std::string& s, SeedMode* out);

}  // namespace sdgen
