// The op-test table (ggml test-backend-ops style): every op on real SD shapes and on awkward ones,
// each case run on a backend under test and on the plain CPU backend (the truth), compared with
// normalized MSE, a per-element bound atol + rtol·|ref| and NaN/Inf agreement. The table knows
// nothing about which backend it runs on: run_case() takes both backends and a dtype, so a CUDA
// backend (real or emulated) goes through the same cases with only a new instantiation.
// The same table drives the perf mode (benchmarks/op_perf.cpp, tests/op_work.h): every case
// knows its work (FLOPs and bytes moved), and perf_cases() adds benchmark-only shapes.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/backend.h"
#include "sdgen/half.h"
#include "sdgen/tensor.h"

namespace sdgen::optest {

struct Tolerance {
  double atol;  // per element: |out - ref| <= atol + rtol·|ref|
  double rtol;
  double nmse;  // Σ(out - ref)² / Σ ref² over finite ref values
};

// Tolerances per op kind and dtype, all in this one place. Inputs are scaled so outputs are O(1)
// (weights ~ N(0, 1/fan_in)). The reference is the plain CPU path: fp32 storage, double
// accumulators, so these bound the backend under test's own error.
//   fp32: a backend under test accumulates in fp32 (blocked/reordered sums); error of a K-term dot
//         product grows like √K·2⁻²⁴·|terms| ≈ 1e-6..1e-5 at K = 11520 (3×3×1280).
//   fp16: inputs are rounded to fp16 before both sides see them, so only the backend's compute
//         and the final rounding to fp16 (2⁻¹¹ ≈ 4.9e-4 relative) count; a fp16 GPU path may also
//         round intermediates (attention probabilities, GEMM epilogues) to fp16, hence a few ulp.
//   bf16: the same reasoning with bf16's 8 significand bits: unit roundoff 2⁻⁸ = 3.9e-3 against
//         fp16's 2⁻¹¹ = 4.9e-4. Every fp16 term above is a multiple of that unit roundoff (the
//         final rounding, a few ulp of rounded intermediates), so each bf16 bound is the fp16 one
//         × 2⁻⁸/2⁻¹¹ = 8 (atol, rtol) and × 64 for the normalized MSE (a squared error): e.g.
//         GEMMs 4e-3 -> 3.2e-2 (≈ 8 bf16 unit roundoffs), pointwise 2e-3 -> 1.6e-2 (≈ 4). The
//         fp32 compute error under it (≤ 1e-5) stays negligible. Exact ops stay exact.
inline constexpr double kBf16OverF16 = 8.0;  // 2⁻⁸ / 2⁻¹¹
struct Tolerances {
  Tolerance f32, f16;
  constexpr Tolerance bf16() const {
    return {f16.atol * kBf16OverF16, f16.rtol * kBf16OverF16, f16.nmse * kBf16OverF16 * kBf16OverF16};
  }
  constexpr Tolerance of(DType dt) const {
    return dt == DType::F32 ? f32 : dt == DType::BF16 ? bf16() : f16;
  }
};
namespace tol {
// conv, linear: long fp32 dot products.
inline constexpr Tolerances kGemm{{1e-4, 1e-4, 1e-10}, {4e-3, 4e-3, 2e-6}};
// attention: two GEMMs and a softmax (fast exp ≈ 2 ulp); probabilities may be fp16 on a GPU.
inline constexpr Tolerances kAttention{{5e-5, 2e-4, 1e-10}, {4e-3, 4e-3, 4e-6}};
// group/layer norm: statistics over up to 4096·10 values; outputs O(1) but |x-mean|/σ reaches ~5.
inline constexpr Tolerances kNorm{{2e-5, 2e-5, 1e-11}, {4e-3, 4e-3, 2e-6}};
// softmax alone: probabilities in [0, 1].
inline constexpr Tolerances kSoftmax{{1e-6, 1e-5, 1e-11}, {1e-3, 2e-3, 1e-6}};
// pointwise math (exp, erf): a few ulp of libm/device intrinsics.
inline constexpr Tolerances kPointwise{{1e-6, 4e-6, 1e-12}, {1e-3, 2e-3, 1e-6}};
// data movement and exact arithmetic (add of two values, ×2 upsample, concat, cast): bit exact.
inline constexpr Tolerances kExact{{0, 0, 0}, {0, 0, 0}};
}  // namespace tol

// A random input: N(mean, stddev²) values of `shape`, or the given values when not empty.
struct Input {
  Shape shape;
  float stddev = 1.0f;
  float mean = 0.0f;
  std::vector<float> values = {};
};

struct OpCase {
  std::string name;
  std::vector<Input> inputs;
  // Runs the op on a backend; dtype is the inputs' (for ops that make tensors from nothing).
  std::function<Tensor(Backend&, const std::vector<Tensor>&, DType)> run;
  Tolerances tol;
  bool fp16 = true;  // also run in fp16 and bf16 (off for the largest shapes, to keep the suite quick)
  // Set where the CPU backend's plain and fast paths are one function (only an OpenMP pragma or
  // nothing differs): the CPU table would compare a function with itself, so it skips the row and
  // names the test that holds that function to hand-derived values instead. Other backends run it.
  std::string cpu_one_function = {};
  Op op = Op::kAdd;  // what it tests, for Backend::supports (set from the name: op_of)
  bool u8_out = false;  // the output is 8-bit pixels (ops::image_to_u8), whatever the input dtype
  // FLOPs of one run where the family counts them by hand (the matrix products: conv, linear,
  // attention); -1: flops_per_element × output elements (tests/op_work.h).
  double flops = -1;
  // Converts to bf16 inside whatever the pass's dtype (the bf16 cast rows, set from the name): a
  // backend runs it only where it supports (kCast, BF16).
  bool casts_bf16 = false;
};

// The op a case exercises, from its name's prefix (one list; a name that matches none is a bug).
inline Op op_of(const std::string& name) {
  static const std::pair<const char*, Op> kPrefixes[] = {
      {"conv", Op::kConv2d},        {"linear", Op::kLinear},         {"gn_", Op::kGroupNorm},
      {"ln_", Op::kLayerNorm},      {"attn_", Op::kAttention},       {"softmax", Op::kSoftmax},
      {"silu", Op::kUnary},         {"quick_gelu", Op::kUnary},      {"gelu", Op::kUnary},
      {"relu", Op::kUnary},         {"tanh", Op::kUnary},
      {"geglu", Op::kGeglu},        {"add_channel", Op::kAddChannel}, {"add_", Op::kAdd},
      {"scale", Op::kScale},        {"upsample", Op::kUpsample},     {"concat", Op::kConcat},
      {"embedding", Op::kEmbedding}, {"timestep_embedding_at", Op::kTimestepEmbedding},
      {"timestep_embedding", Op::kTimestepEmbedding}, {"cast", Op::kCast},
      {"scale_repeat", Op::kRepeatBatch},
      {"sampler_step", Op::kSamplerStep}, {"inpaint_blend", Op::kInpaintBlend}, {"image_u8", Op::kImageToU8}, {"pad_", Op::kPad},
      {"denoised", Op::kDenoised}, {"add_scaled_at", Op::kAddScaledAt}, {"guidance_rescale", Op::kGuidanceRescale}};
  for (const auto& [prefix, op] : kPrefixes)
    if (name.rfind(prefix, 0) == 0) return op;
  throw std::logic_error("op_of: no op for case " + name);
}

// Marks `c` as one function on the CPU, held to hand-derived values by `covered_by`.
inline OpCase cpu_one_function(OpCase c, const std::string& covered_by) {
  c.cpu_one_function = covered_by;
  return c;
}

// ---- the runner ----

inline std::vector<float> make_values(const Input& in, uint32_t seed) {
  if (!in.values.empty()) return in.values;
  int64_t n = 1;
  for (int64_t d : in.shape) n *= d;
  std::vector<float> v((size_t)n);
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(in.mean, in.stddev);
  for (float& x : v) x = dist(gen);
  return v;
}

// A tensor of `values` in `dtype` on `device` (fp16/bf16 conversion on the host, half.h's).
inline Tensor make_tensor(const Shape& shape, const std::vector<float>& values, DType dtype,
                          Device device) {
  Tensor t = Tensor::from_floats(shape, values);
  if (is_half_dtype(dtype)) {
    Tensor h = Tensor::empty(shape, dtype);
    uint16_t* p = h.data_as<uint16_t>();
    for (size_t i = 0; i < values.size(); ++i)
      p[i] = dtype == DType::F16 ? float_to_half_bits(values[i]) : float_to_bf16_bits(values[i]);
    t = h;
  }
  return t.to(device);
}

// `v` rounded to `dtype` (what storing it in a tensor of that dtype does); fp32 unchanged.
inline float round_to(DType dtype, float v) {
  return dtype == DType::F16 ? round_to_half(v) : dtype == DType::BF16 ? round_to_bf16(v) : v;
}

// The inputs of `c` in `dtype` on `device`, seeded by position as run_case seeds them (fp16 values
// are the fp32 ones rounded).
inline std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device) {
  std::vector<Tensor> in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    std::vector<float> v = make_values(c.inputs[i], 1234u + 7919u * (uint32_t)i);
    in.push_back(make_tensor(c.inputs[i].shape, v, dtype, device));
  }
  return in;
}

struct Comparison {
  double max_abs = 0, nmse = 0;
  double worst = 0;  // max |out-ref| / (atol + rtol·|ref|); ≤ 1 passes
  int64_t worst_index = -1;
  int64_t special_mismatch = 0;  // NaN/Inf disagreements
  int64_t first_special = -1;
  bool shape_ok = true;
};

inline Comparison compare(const std::vector<float>& out, const std::vector<float>& ref,
                          const Tolerance& t) {
  Comparison c;
  if (out.size() != ref.size()) {
    c.shape_ok = false;
    return c;
  }
  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double r = ref[i], o = out[i];
    if (!std::isfinite(r) || !std::isfinite(o)) {
      // NaN must meet NaN, ±Inf the same-signed Inf.
      const bool agree = (std::isnan(r) && std::isnan(o)) || (std::isinf(r) && o == r);
      if (!agree && c.special_mismatch++ == 0) c.first_special = (int64_t)i;
      continue;
    }
    const double e = std::fabs(o - r);
    err2 += e * e;
    ref2 += r * r;
    c.max_abs = std::max(c.max_abs, e);
    const double bound = t.atol + t.rtol * std::fabs(r);
    const double ratio = bound > 0 ? e / bound : (e > 0 ? INFINITY : 0.0);
    if (ratio > c.worst || c.worst_index < 0) {
      c.worst = ratio;
      c.worst_index = (int64_t)i;
    }
  }
  c.nmse = ref2 > 0 ? err2 / ref2 : err2;
  return c;
}

struct CaseResult {
  Comparison cmp;
  Tolerance tol;
  std::vector<float> out, ref;
  bool guard_intact = true;  // nothing written past the end of the output's allocation
};

// Runs `c` on `test` in `dtype` and on `ref` (fp32, the same fp16-rounded values when dtype is
// fp16), returns the comparison. Inputs are seeded by their position, so every backend and every
// run sees the same values.
inline CaseResult run_case(const OpCase& c, Backend& test, Backend& ref, DType dtype) {
  std::vector<Tensor> test_in, ref_in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    std::vector<float> v = make_values(c.inputs[i], 1234u + 7919u * (uint32_t)i);
    for (float& x : v) x = round_to(dtype, x);
    test_in.push_back(make_tensor(c.inputs[i].shape, v, dtype, test.device()));
    ref_in.push_back(make_tensor(c.inputs[i].shape, v, DType::F32, ref.device()));
  }
  CaseResult r;
  r.tol = c.tol.of(dtype);
  Tensor out = c.run(test, test_in, dtype);
  Tensor expect = c.run(ref, ref_in, DType::F32);
  r.out = out.to_floats();
  r.ref = expect.to_floats();
  r.guard_intact = out.guard_intact() && expect.guard_intact();
  // A 16-bit result can at best be the exact result rounded to its dtype: compare against that,
  // so exact ops stay exact and the tolerances count only the backend's own error.
  for (float& v : r.ref) v = round_to(dtype, v);
  r.cmp = compare(r.out, r.ref, r.tol);
  r.cmp.shape_ok = r.cmp.shape_ok && out.shape() == expect.shape() &&
                   out.dtype() == (c.u8_out ? DType::U8 : dtype);
  return r;
}

// Runs `c` (see run_case) and asserts shape/dtype, NaN/Inf agreement, normalized MSE and the
// per-element bound; prints one summary line per case. 16-bit cases marked off are skipped.
inline void expect_case_matches(const OpCase& c, Backend& test, Backend& ref, DType dtype) {
  if (is_half_dtype(dtype) && !c.fp16) GTEST_SKIP() << dtype_name(dtype) << " pass off for this case";
  CaseResult r = run_case(c, test, ref, dtype);
  const Comparison& m = r.cmp;
  std::printf("[ op ] %-38s %s %s max_abs %.3g  nmse %.3g  err/bound %.3g\n", c.name.c_str(),
              test.name().c_str(), dtype_name(dtype), m.max_abs, m.nmse, m.worst);
  ASSERT_TRUE(m.shape_ok) << "output shape or dtype differs";
  EXPECT_TRUE(r.guard_intact) << "an output was written past its end (guard bytes changed)";
  EXPECT_EQ(m.special_mismatch, 0)
      << "NaN/Inf disagreement, first at " << m.first_special << ": out " << r.out[m.first_special]
      << " ref " << r.ref[m.first_special];
  EXPECT_LE(m.nmse, r.tol.nmse);
  if (m.worst_index >= 0) {
    EXPECT_LE(m.worst, 1.0) << "worst element " << m.worst_index << ": out " << r.out[m.worst_index]
                            << " ref " << r.ref[m.worst_index] << " (atol " << r.tol.atol
                            << ", rtol " << r.tol.rtol << ")";
  }
}

// ---- the table ----

namespace cases {

using Ins = std::vector<Tensor>;

inline Tensor opt(const Ins& in, size_t i) { return i < in.size() ? in[i] : Tensor(); }

// x [N,H,W,C] ~ N(0,1); w [Co,K,K,C] ~ N(0, 1/(K·K·C)) so outputs are O(1); bias ~ N(0, 0.1²).
// add: what the convolution adds to its result, ~ N(0, 1): kResidual the output's shape (a
// resnet's shortcut), kPerImage [N, Co] (a resnet's time embedding).
enum class ConvAdd { kNone, kResidual, kPerImage };
inline OpCase conv(const std::string& name, Shape x, int64_t co, int k, int stride, int pad,
                   bool bias = true, bool fp16 = true, ConvAdd add = ConvAdd::kNone) {
  const float ws = 1.0f / std::sqrt((float)(k * k * x[3]));
  std::vector<Input> in = {{x}, {{co, k, k, x[3]}, ws}};
  if (bias) in.push_back({{co}, 0.1f});
  const int64_t ho = (x[1] + 2 * pad - k) / stride + 1, wo = (x[2] + 2 * pad - k) / stride + 1;
  if (add == ConvAdd::kResidual) in.push_back({{x[0], ho, wo, co}});
  if (add == ConvAdd::kPerImage) in.push_back({{x[0], co}});
  const size_t bi = bias ? 2 : 99, ai = add != ConvAdd::kNone ? in.size() - 1 : 99;
  OpCase c{
      name, in,
      [=](Backend& b, const Ins& t, DType) { return b.conv2d(t[0], t[1], opt(t, bi), stride, pad, opt(t, ai)); },
      tol::kGemm, fp16};
  // A multiply-add per output element and weight tap: 2·N·Ho·Wo·Co·k²·Cin (bias and adds left out).
  c.flops = 2.0 * (double)x[0] * (double)ho * (double)wo * (double)co * k * k * (double)x[3];
  return c;
}

// residual: a skip connection of the output's shape, ~ N(0, 1), added by the op.
inline OpCase linear(const std::string& name, Shape x, int64_t out, bool bias = true,
                     bool fp16 = true, bool residual = false) {
  const int64_t in_dim = x.back();
  std::vector<Input> in = {{x}, {{out, in_dim}, 1.0f / std::sqrt((float)in_dim)}};
  if (bias) in.push_back({{out}, 0.1f});
  Shape y = x;
  y.back() = out;
  if (residual) in.push_back({y});
  const size_t bi = bias ? 2 : 99, ri = residual ? in.size() - 1 : 99;
  OpCase c{name, in,
           [=](Backend& b, const Ins& t, DType) { return b.linear(t[0], t[1], opt(t, bi), opt(t, ri)); },
           tol::kGemm, fp16};
  // 2·M·N·K, M the rows of x (every leading dimension).
  double rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= (double)x[i];
  c.flops = 2.0 * rows * (double)out * (double)in_dim;
  return c;
}

// gamma ~ N(1, 0.1²), beta ~ N(0, 0.1²), as trained norms look.
inline OpCase group_norm(const std::string& name, Shape x, int groups, float eps, bool silu,
                         float mean = 0.0f, float stddev = 1.0f, bool fp16 = true) {
  const int64_t C = x.back();
  return {name,
          {{x, stddev, mean}, {{C}, 0.1f, 1.0f}, {{C}, 0.1f}},
          [=](Backend& b, const Ins& t, DType) {
            return b.group_norm(t[0], t[1], t[2], groups, eps, silu);
          },
          tol::kNorm,
          fp16};
}

inline OpCase layer_norm(const std::string& name, Shape x, float mean = 0.0f, float stddev = 1.0f) {
  const int64_t C = x.back();
  return {name,
          {{x, stddev, mean}, {{C}, 0.1f, 1.0f}, {{C}, 0.1f}},
          [](Backend& b, const Ins& t, DType) { return b.layer_norm(t[0], t[1], t[2], 1e-5f); },
          tol::kNorm,
          true,
          "OpsHand.LayerNormKnownVector"};
}

// Q·Kᵀ and P·V, two FLOPs per multiply-add: 4·N·H·(query, key pairs)·D; causal counts only the
// visible pairs (query i sees keys 0..i, as Backend::attention masks).
// The softmax's few FLOPs per score are left out, as FlashAttention's papers do.
inline double attention_flops(int64_t n, int64_t lq, int64_t lk, int heads, int64_t d, bool causal) {
  double pairs = (double)lq * (double)lk;
  if (causal) {
    pairs = 0;
    for (int64_t i = 0; i < lq; ++i) pairs += (double)std::min(lk, i + 1);
  }
  return 4.0 * (double)n * heads * pairs * (double)d;
}

// q, k, v ~ N(0,1) with the model's scale 1/√D: scores ~ N(0,1), peaked enough to matter.
inline OpCase attention(const std::string& name, int64_t n, int64_t lq, int64_t lk, int heads,
                        int64_t d, bool causal, bool fp16 = true) {
  const float scale = 1.0f / std::sqrt((float)d);
  OpCase c{name,
           {{{n, lq, heads * d}}, {{n, lk, heads * d}}, {{n, lk, heads * d}}},
           [=](Backend& b, const Ins& t, DType) {
             return b.attention(t[0], t[1], t[2], heads, scale, causal);
           },
           tol::kAttention,
           fp16};
  c.flops = attention_flops(n, lq, lk, heads, d, causal);
  return c;
}

// `t`'s elements from the second on, viewed as `shape`: one element past an aligned allocation,
// so a CUDA kernel's 16-byte vector path must notice and fall back to its scalar version.
inline Tensor unaligned(const Tensor& t, const Shape& shape) {
  return t.reshape({-1}).slice0(1, t.numel()).reshape(shape);
}

inline OpCase unary(const std::string& name, Backend::Unary op, Input x, bool fp16 = true) {
  return {name,
          {x},
          [=](Backend& b, const Ins& t, DType) { return b.unary(t[0], op); },
          tol::kPointwise,
          fp16};
}

// Values every activation must get right: zeros, tails, infinities, NaN.
inline std::vector<float> special_values() {
  return {0.0f,  -0.0f,  1.0f,   -1.0f,   0.5f,  -3.0f,  8.0f,     -8.0f,     20.0f, -20.0f,
          88.0f, -88.0f, 100.0f, -100.0f, 1e-8f, -1e-8f, INFINITY, -INFINITY, NAN,   3.3e4f};
}

}  // namespace cases

inline const std::vector<OpCase>& op_cases() {
  using namespace cases;
  using U = Backend::Unary;
  static const std::vector<OpCase> table = [] {
    std::vector<OpCase> t;
    // Convolutions: the UNet's levels (64×64×320, 32×32×640, 8×8×1280), its downsampler, conv_in
    // (4 channels), conv_out (4 outputs), 1×1 shortcuts / proj_in, then awkward geometry.
    t.push_back(conv("conv3x3_2x64x64x320", {2, 64, 64, 320}, 320, 3, 1, 1, true, false));
    t.push_back(conv("conv3x3_2x32x32x640", {2, 32, 32, 640}, 640, 3, 1, 1, true, false));
    t.push_back(conv("conv3x3_2x8x8x1280", {2, 8, 8, 1280}, 1280, 3, 1, 1));
    t.push_back(conv("conv3x3_s2_2x64x64x320", {2, 64, 64, 320}, 320, 3, 2, 1));
    t.push_back(conv("conv1x1_2x64x64x320", {2, 64, 64, 320}, 320, 1, 1, 0));
    t.push_back(conv("conv1x1_2x32x32x960_to_640", {2, 32, 32, 960}, 640, 1, 1, 0));
    t.push_back(conv("conv_in_2x64x64x4_to_320", {2, 64, 64, 4}, 320, 3, 1, 1));
    t.push_back(conv("conv_out_2x64x64x320_to_4", {2, 64, 64, 320}, 4, 3, 1, 1));
    t.push_back(conv("conv3x3_odd_3x7x5x9_to_13", {3, 7, 5, 9}, 13, 3, 1, 1));
    t.push_back(conv("conv3x3_s2_odd_3x7x5x9_to_13", {3, 7, 5, 9}, 13, 3, 2, 1));
    t.push_back(conv("conv3x3_nopad_nobias_2x7x6x3", {2, 7, 6, 3}, 5, 3, 1, 0, false));
    t.push_back(conv("conv5x5_pad2_2x6x6x3", {2, 6, 6, 3}, 7, 5, 1, 2));
    t.push_back(conv("conv1x1_pad1_1x3x4x5", {1, 3, 4, 5}, 6, 1, 1, 1));
    t.push_back(conv("conv1x1_s2_1x5x5x7", {1, 5, 5, 7}, 3, 1, 2, 0));
    t.push_back(conv("conv3x3_1x1x1x1", {1, 1, 1, 1}, 1, 3, 1, 1));
    // Fewer output pixels than channels (the channel-split path of the 8×8 level), odd sizes.
    t.push_back(conv("conv3x3_fewpix_1x3x5x7_to_40", {1, 3, 5, 7}, 40, 3, 1, 1));
    t.push_back(conv("conv3x3_s2_fewpix_2x5x4x6_to_33", {2, 5, 4, 6}, 33, 3, 2, 1, false));
    t.push_back(conv("conv3x3_s2_1x65x63x16", {1, 65, 63, 16}, 17, 3, 2, 1));
    // With the resnet's adds fused: the shortcut (conv2) and the time embedding (conv1), on a UNet
    // level and on odd sizes, with and without bias.
    t.push_back(conv("conv3x3_residual_2x32x32x64", {2, 32, 32, 64}, 64, 3, 1, 1, true, true, ConvAdd::kResidual));
    t.push_back(conv("conv3x3_temb_2x32x32x64", {2, 32, 32, 64}, 64, 3, 1, 1, true, true, ConvAdd::kPerImage));
    t.push_back(conv("conv3x3_residual_odd_3x7x5x9_to_13", {3, 7, 5, 9}, 13, 3, 1, 1, true, true, ConvAdd::kResidual));
    t.push_back(conv("conv3x3_temb_nobias_odd_3x7x5x9_to_13", {3, 7, 5, 9}, 13, 3, 1, 1, false, true, ConvAdd::kPerImage));

    // Linear: self-attention projections, cross-attention k/v from the 768-wide context, the
    // GEGLU input projection, the time embedding (2 rows), awkward sizes.
    t.push_back(linear("linear_2x4096x320_to_320", {2, 4096, 320}, 320, true, false));
    t.push_back(linear("linear_2x77x768_to_320_nobias", {2, 77, 768}, 320, false));
    t.push_back(linear("linear_2x4096x320_to_2560", {2, 4096, 320}, 2560, true, false));
    t.push_back(linear("linear_time_2x320_to_1280", {2, 320}, 1280));
    t.push_back(linear("linear_odd_3x5x13_to_7", {3, 5, 13}, 7));
    t.push_back(linear("linear_1x1_to_1", {1, 1}, 1));
    t.push_back(linear("linear_7x33_to_65_nobias", {7, 33}, 65, false));
    // With the skip connection added in the epilogue: the transformer's attention output and
    // feed-forward projections (to_out.0, ff.net.2) and CLIP's fc2; odd sizes, with and without bias.
    t.push_back(linear("linear_residual_2x4096x320_to_320", {2, 4096, 320}, 320, true, false, true));
    t.push_back(linear("linear_residual_2x77x3072_to_768", {2, 77, 3072}, 768, true, true, true));
    t.push_back(linear("linear_residual_odd_3x5x13_to_7", {3, 5, 13}, 7, true, true, true));
    t.push_back(linear("linear_residual_nobias_7x33_to_65", {7, 33}, 65, false, true, true));

    // Group norm: resnet (eps 1e-5, with SiLU) and transformer (eps 1e-6) norms, a large-offset
    // input (catches one-pass E[x²]-E[x]²), awkward group counts and spatial sizes.
    t.push_back(group_norm("gn_2x64x64x320_g32", {2, 64, 64, 320}, 32, 1e-6f, false));
    t.push_back(group_norm("gn_silu_2x64x64x320_g32", {2, 64, 64, 320}, 32, 1e-5f, true));
    t.push_back(group_norm("gn_silu_6x32x32x640_g32", {6, 32, 32, 640}, 32, 1e-5f, true));
    t.push_back(
        group_norm("gn_offset300_2x8x8x64_g8", {2, 8, 8, 64}, 8, 1e-5f, false, 300.0f, 0.1f));
    t.push_back(group_norm("gn_silu_odd_3x7x5x9_g3", {3, 7, 5, 9}, 3, 1e-5f, true));
    t.push_back(group_norm("gn_1px_2x1x1x13_g13", {2, 1, 1, 13}, 13, 1e-5f, false));
    t.push_back(group_norm("gn_seq_1x5x15_g5", {1, 5, 15}, 5, 1e-6f, true));

    // Layer norm: CLIP (77×768) and the UNet transformer (4096×320), offset and 1-wide rows.
    t.push_back(layer_norm("ln_2x77x768", {2, 77, 768}));
    t.push_back(layer_norm("ln_2x4096x320", {2, 4096, 320}));
    t.push_back(layer_norm("ln_offset100_3x13", {3, 13}, 100.0f, 0.5f));
    t.push_back(layer_norm("ln_1x1", {1, 1}));
    // Vector-width coverage of the CUDA kernel (registers per lane: C = 640, 1280; an offset row
    // on the vector path) and its scalar fallbacks (C beyond the registers, an unaligned slice).
    t.push_back(layer_norm("ln_2x5x640", {2, 5, 640}));
    t.push_back(layer_norm("ln_3x9x1280", {3, 9, 1280}));
    t.push_back(layer_norm("ln_offset100_2x7x320", {2, 7, 320}, 100.0f, 0.5f));
    t.push_back(layer_norm("ln_2x3x3000", {2, 3, 3000}));
    t.push_back({"ln_unaligned_2x5x320",
                 {{{2 * 5 * 320 + 1}}, {{320}, 0.1f, 1.0f}, {{320}, 0.1f}},
                 [](Backend& b, const Ins& in, DType) {
                   return b.layer_norm(unaligned(in[0], {2, 5, 320}), in[1], in[2], 1e-5f);
                 },
                 tol::kNorm});

    // Attention: UNet self (4096 tokens, 8 heads × 40) and cross (77 keys), 32×32 level (80-wide
    // heads), CLIP causal (12 × 64), the VAE's single 512-wide head, then awkward shapes: one
    // query / one key, heads of 7, causal over several query blocks, Lq not a block multiple.
    // (batch 1 here: the plain reference over 2 × 8 × 4096² scores alone takes ~10 s)
    t.push_back(attention("attn_self_1x4096_h8_d40", 1, 4096, 4096, 8, 40, false, false));
    t.push_back(attention("attn_cross_2x4096x77_h8_d40", 2, 4096, 77, 8, 40, false));
    t.push_back(attention("attn_self_2x1024_h8_d80", 2, 1024, 1024, 8, 80, false));
    t.push_back(attention("attn_causal_2x77_h12_d64", 2, 77, 77, 12, 64, true));
    t.push_back(attention("attn_vae_1x1024_h1_d512", 1, 1024, 1024, 1, 512, false));
    t.push_back(attention("attn_lq1_lk1", 2, 1, 1, 2, 3, false));
    t.push_back(attention("attn_lq1_lk9_causal", 1, 1, 9, 1, 4, true));
    t.push_back(attention("attn_odd_3x5x3_h3_d7", 3, 5, 3, 3, 7, false));
    t.push_back(attention("attn_causal_multiblock_1x1100_h2_d8", 1, 1100, 1100, 2, 8, true));
    t.push_back(attention("attn_lq300_lk4100_h1_d8", 1, 300, 4100, 1, 8, false));
    // Every head width the CUDA kernels tile differently (fp16 tensor-core path: D a multiple of
    // 8, padded to 16 for Q·Kᵀ when D is not; fp32 path: per-D tiles), on few tokens so the
    // emulator stays quick; causal CLIP-like, odd token counts over several tiles, one query,
    // and the 16×16 and 8×8 levels' 160-wide heads on 77 context keys.
    for (int d : {8, 24, 40, 64, 80, 160})
      t.push_back(attention("attn_d" + std::to_string(d) + "_2x37x45_h2", 2, 37, 45, 2, d, false));
    t.push_back(attention("attn_causal_1x77_h2_d64", 1, 77, 77, 2, 64, true));
    t.push_back(attention("attn_odd_tokens_1x131x67_h3_d40", 1, 131, 67, 3, 40, false));
    t.push_back(attention("attn_lq1_lk77_h2_d40", 2, 1, 77, 2, 40, false));
    t.push_back(attention("attn_cross_2x130x77_h2_d160", 2, 130, 77, 2, 160, false));

    // Softmax over long and short rows, and rows with -inf / +inf / NaN / huge spreads.
    t.push_back({"softmax_16x4096",
                 {{{16, 4096}, 3.0f}},
                 [](Backend& b, const Ins& in, DType) { return b.softmax(in[0]); },
                 tol::kSoftmax});
    t.push_back({"softmax_odd_3x7",
                 {{{3, 7}}},
                 [](Backend& b, const Ins& in, DType) { return b.softmax(in[0]); },
                 tol::kSoftmax});
    t.push_back({"softmax_special_5x4",
                 {{{5, 4}, 1, 0, {0.0f,      -INFINITY, 1.0f,      -INFINITY,  // masked entries
                                  -INFINITY, -INFINITY, -INFINITY, -INFINITY,  // all masked: NaN
                                  1e4f,      -1e4f,     0.0f,      1e4f,       // huge spread
                                  INFINITY,  0.0f,      1.0f,      2.0f,       // +inf: NaN row
                                  NAN,       0.0f,      1.0f,      2.0f}}},    // NaN: NaN row
                 [](Backend& b, const Ins& in, DType) { return b.softmax(in[0]); },
                 tol::kSoftmax});

    // Pointwise: activations on a real activation shape and on special values.
    t.push_back(unary("silu_2x64x64x320", U::kSilu, {{2, 64, 64, 320}, 3.0f}));
    t.push_back(unary("quick_gelu_2x77x3072", U::kQuickGelu, {{2, 77, 3072}, 3.0f}));
    t.push_back(unary("gelu_2x4096x1280", U::kGelu, {{2, 4096, 1280}, 3.0f}));
    t.push_back(unary("silu_special", U::kSilu, {{20}, 1, 0, special_values()}));
    t.push_back(unary("quick_gelu_special", U::kQuickGelu, {{20}, 1, 0, special_values()}));
    t.push_back(unary("gelu_special", U::kGelu, {{20}, 1, 0, special_values()}));
    // The tiny autoencoder's (TAESD): ReLU after its convolutions, tanh on its latents.
    t.push_back(unary("relu_1x64x64x64", U::kRelu, {{1, 64, 64, 64}, 3.0f}));
    t.push_back(unary("tanh_2x64x64x4", U::kTanh, {{2, 64, 64, 4}, 3.0f}));
    t.push_back(unary("relu_special", U::kRelu, {{20}, 1, 0, special_values()}));
    t.push_back(unary("tanh_special", U::kTanh, {{20}, 1, 0, special_values()}));
    auto geglu = [](Backend& b, const Ins& in, DType) { return b.geglu(in[0]); };
    t.push_back({"geglu_2x4096x2560", {{{2, 4096, 2560}, 2.0f}}, geglu, tol::kPointwise});
    t.push_back({"geglu_odd_3x5x2", {{{3, 5, 2}, 2.0f}}, geglu, tol::kPointwise});
    // Scalar fallbacks of the CUDA kernels: an unaligned slice; c = 12 (fp32 vectors, fp16 not).
    t.push_back({"silu_unaligned_5x67",
                 {{{5 * 67 + 1}, 3.0f}},
                 [](Backend& b, const Ins& in, DType) {
                   return b.unary(unaligned(in[0], {5, 67}), Backend::Unary::kSilu);
                 },
                 tol::kPointwise});
    t.push_back({"geglu_unaligned_3x5x64",
                 {{{3 * 5 * 64 + 1}, 2.0f}},
                 [](Backend& b, const Ins& in, DType) { return b.geglu(unaligned(in[0], {3, 5, 64})); },
                 tol::kPointwise});
    t.push_back({"geglu_c12_3x5x24", {{{3, 5, 24}, 2.0f}}, geglu, tol::kPointwise});

    // Exact ops. On the CPU each is one function for plain and fast (see OpCase::cpu_one_function).
    auto one_fn = [&t](OpCase c) {
      const std::string& n = c.name;
      const char* hand = n.rfind("timestep_embedding", 0) == 0 ? "OpsHand.TimestepEmbeddingClosedForm"
                         : n.rfind("cast_", 0) == 0 ? "OpsHand.CastRoundsToNearestEven, Half.*"
                                                     : "OpsHand.UpsampleConcatEmbeddingAddChannel";
      t.push_back(cpu_one_function(std::move(c), hand));
    };
    auto add = [](Backend& b, const Ins& in, DType) { return b.add(in[0], in[1]); };
    auto add_channel = [](Backend& b, const Ins& in, DType) { return b.add_channel(in[0], in[1]); };
    auto up = [](Backend& b, const Ins& in, DType) { return b.upsample_nearest2x(in[0]); };
    auto cat = [](Backend& b, const Ins& in, DType) { return b.concat_channels(in[0], in[1]); };
    one_fn({"add_2x64x64x320", {{{2, 64, 64, 320}}, {{2, 64, 64, 320}}}, add, tol::kExact});
    one_fn({"add_odd_3x7x5x9", {{{3, 7, 5, 9}}, {{3, 7, 5, 9}}}, add, tol::kExact});
    one_fn(
        {"add_channel_2x64x64x320", {{{2, 64, 64, 320}}, {{2, 320}}}, add_channel, tol::kExact});
    one_fn({"add_channel_odd_3x7x5x9", {{{3, 7, 5, 9}}, {{3, 9}}}, add_channel, tol::kExact});
    one_fn({"add_channel_seq_2x5x3", {{{2, 5, 3}}, {{2, 3}}}, add_channel, tol::kExact});
    one_fn({"scale_2x64x64x4",
                 {{{2, 64, 64, 4}}},
                 [](Backend& b, const Ins& in, DType) { return b.scale(in[0], 1.0f / 0.18215f); },
                 tol::kExact});
    one_fn({"upsample_2x8x8x1280", {{{2, 8, 8, 1280}}}, up, tol::kExact});
    one_fn({"upsample_2x32x32x640", {{{2, 32, 32, 640}}}, up, tol::kExact});
    one_fn({"upsample_odd_3x7x5x9", {{{3, 7, 5, 9}}}, up, tol::kExact});
    one_fn(
        {"concat_2x64x64x320_320", {{{2, 64, 64, 320}}, {{2, 64, 64, 320}}}, cat, tol::kExact});
    one_fn({"concat_odd_3x7x5x9_4", {{{3, 7, 5, 9}}, {{3, 7, 5, 4}}}, cat, tol::kExact});
    one_fn({"concat_empty_2x3x0_4", {{{2, 3, 0}}, {{2, 3, 4}}}, cat, tol::kExact});
    // Scalar fallbacks of the CUDA kernels: unaligned slices; 12 channels (fp32 vectors, fp16
    // not); a flat size with a tail after the last whole vector.
    one_fn({"add_unaligned_5x67",
            {{{5 * 67 + 1}}, {{5, 67}}},
            [](Backend& b, const Ins& in, DType) { return b.add(unaligned(in[0], {5, 67}), in[1]); },
            tol::kExact});
    one_fn({"scale_unaligned_5x67",
            {{{5 * 67 + 1}}},
            [](Backend& b, const Ins& in, DType) { return b.scale(unaligned(in[0], {5, 67}), 0.18215f); },
            tol::kExact});
    one_fn({"add_channel_unaligned_2x5x64",
            {{{2 * 5 * 64 + 1}}, {{2, 64}}},
            [](Backend& b, const Ins& in, DType) {
              return b.add_channel(unaligned(in[0], {2, 5, 64}), in[1]);
            },
            tol::kExact});
    one_fn({"add_channel_c12_3x5x12", {{{3, 5, 12}}, {{3, 12}}}, add_channel, tol::kExact});
    one_fn({"upsample_unaligned_2x3x5x16",
            {{{2 * 3 * 5 * 16 + 1}}},
            [](Backend& b, const Ins& in, DType) {
              return b.upsample_nearest2x(unaligned(in[0], {2, 3, 5, 16}));
            },
            tol::kExact});
    one_fn({"upsample_c12_2x3x5x12", {{{2, 3, 5, 12}}}, up, tol::kExact});
    one_fn({"concat_unaligned_3x5x16_8",
            {{{3 * 5 * 16 + 1}}, {{3, 5, 8}}},
            [](Backend& b, const Ins& in, DType) {
              return b.concat_channels(unaligned(in[0], {3, 5, 16}), in[1]);
            },
            tol::kExact});
    one_fn({"concat_c12_3x5x12_8", {{{3, 5, 12}}, {{3, 5, 8}}}, cat, tol::kExact});
    // Zero padding (the VAE encoder's downsampler: (0, 1, 0, 1)). The CPU's plain path writes
    // element by element, the fast one row runs, so the CPU table compares two functions. The VAE
    // levels' channel counts at smaller sizes (the SD sizes are perf rows, tests/op_work.h); all four
    // sides; odd channels and 12 (fp16 takes the scalar kernel); an unaligned view; no padding.
    auto pad = [](int t, int b, int l, int r) {
      return [=](Backend& be, const Ins& in, DType) { return be.pad(in[0], t, b, l, r); };
    };
    t.push_back({"pad_1x64x64x128_b1r1", {{{1, 64, 64, 128}}}, pad(0, 1, 0, 1), tol::kExact});
    t.push_back({"pad_2x32x32x256_b1r1", {{{2, 32, 32, 256}}}, pad(0, 1, 0, 1), tol::kExact});
    t.push_back({"pad_1x16x16x512_b1r1", {{{1, 16, 16, 512}}}, pad(0, 1, 0, 1), tol::kExact});
    t.push_back({"pad_odd_3x7x5x9_t2b1l0r3", {{{3, 7, 5, 9}}}, pad(2, 1, 0, 3), tol::kExact});
    t.push_back({"pad_c12_2x3x5x12_t1b0l1r0", {{{2, 3, 5, 12}}}, pad(1, 0, 1, 0), tol::kExact});
    t.push_back({"pad_none_2x3x5x8", {{{2, 3, 5, 8}}}, pad(0, 0, 0, 0), tol::kExact});
    t.push_back({"pad_unaligned_2x3x5x16_b1r1",
                 {{{2 * 3 * 5 * 16 + 1}}},
                 [](Backend& b, const Ins& in, DType) { return b.pad(unaligned(in[0], {2, 3, 5, 16}), 0, 1, 0, 1); },
                 tol::kExact});
    one_fn({"embedding_unaligned_2x7_from_50x64",
            {{{50 * 64 + 1}}},
            [](Backend& b, const Ins& in, DType) {
              std::vector<int> ids(14);
              for (int i = 0; i < 14; ++i) ids[i] = (i * 17 + 3) % 50;
              return b.embedding(ids, 2, unaligned(in[0], {50, 64}));
            },
            tol::kExact});
    one_fn({"embedding_odd_2x7_from_50x12",
            {{{50, 12}}},
            [](Backend& b, const Ins& in, DType) {
              std::vector<int> ids(14);
              for (int i = 0; i < 14; ++i) ids[i] = (i * 17 + 3) % 50;
              return b.embedding(ids, 2, in[0]);
            },
            tol::kExact});
    one_fn({"embedding_2x77_from_1000x64",
                 {{{1000, 64}}},
                 [](Backend& b, const Ins& in, DType) {
                   std::vector<int> ids(154);
                   for (int i = 0; i < 154; ++i) ids[i] = (i * 397 + 11) % 1000;
                   ids[0] = 0, ids[1] = 999;
                   return b.embedding(ids, 2, in[0]);
                 },
                 tol::kExact});
    one_fn({"timestep_embedding_320",
                 {},
                 [](Backend& b, const Ins&, DType dt) {
                   return b.timestep_embedding({0.0f, 1.0f, 999.0f, 500.5f, 21.0f}, 320, dt);
                 },
                 tol::kPointwise});
    one_fn(
        {"timestep_embedding_odd_half_14",
         {},
         [](Backend& b, const Ins&, DType dt) { return b.timestep_embedding({7.0f}, 14, dt); },
         tol::kPointwise});
    // fp32 -> fp16 -> fp32 (fp32 pass only: the output is fp32 by construction).
    one_fn({"cast_roundtrip_special",
                 {{{12},
                   1,
                   0,
                   {1.0f, 1.00048828125f, 1.00146484375f, 65504.0f, 65519.0f, 65520.0f, 5.96e-8f,
                    2.9e-8f, 1e-30f, -INFINITY, NAN, -2.5f}}},
                 [](Backend& b, const Ins& in, DType) {
                   return b.cast(b.cast(in[0], DType::F16), DType::F32);
                 },
                 tol::kExact,
                 false});
    one_fn({"cast_roundtrip_2x64x64x320",
                 {{{2, 64, 64, 320}, 100.0f}},
                 [](Backend& b, const Ins& in, DType) {
                   return b.cast(b.cast(in[0], DType::F16), DType::F32);
                 },
                 tol::kExact,
                 false});
    one_fn({"cast_roundtrip_unaligned_5x67",
            {{{5 * 67 + 1}, 100.0f}},
            [](Backend& b, const Ins& in, DType) {
              return b.cast(b.cast(unaligned(in[0], {5, 67}), DType::F16), DType::F32);
            },
            tol::kExact,
            false});
    // fp32 -> bf16 -> fp32 and fp16 -> bf16 -> fp32 (fp32 pass only, as above). bf16 keeps fp32's
    // exponent: 65520 and 1e-30 survive, 3.4e38 rounds to inf, subnormals round like the rest.
    one_fn({"cast_roundtrip_bf16_special",
            {{{12},
              1,
              0,
              {1.0f, 1.00390625f, 1.01171875f, 65520.0f, 3.4e38f, 1e-30f, 1e-40f, -INFINITY, NAN,
               -2.5f, 3.0e-39f, 1.00390634f}}},
            [](Backend& b, const Ins& in, DType) {
              return b.cast(b.cast(in[0], DType::BF16), DType::F32);
            },
            tol::kExact,
            false});
    one_fn({"cast_roundtrip_bf16_2x64x64x320",
            {{{2, 64, 64, 320}, 100.0f}},
            [](Backend& b, const Ins& in, DType) {
              return b.cast(b.cast(in[0], DType::BF16), DType::F32);
            },
            tol::kExact,
            false});
    one_fn({"cast_roundtrip_f16_bf16_unaligned_5x67",
            {{{5 * 67 + 1}, 100.0f}},
            [](Backend& b, const Ins& in, DType) {
              Tensor h = b.cast(unaligned(in[0], {5, 67}), DType::F16);
              return b.cast(b.cast(h, DType::BF16), DType::F32);
            },
            tol::kExact,
            false});
    // One unit of a sampler plan (ops::sampler_step): x, state and the noise table are copied
    // first (x and state are updated in place) and the result is x and state side by side. The
    // table's rows are random (every coefficient counts), row 1 of 2 is picked by step = 1, so a
    // wrong row, column, state stride or noise row shows. On the CPU the plain and fast paths are
    // one function, held to diffusers by the plan tests.
    auto plan_step = [](int K, bool noise) {
      return [K, noise](Backend& b, const Ins& in, DType) {
        Tensor x = in[0].clone(), step = in[3].clone();
        Tensor state = K ? in[4].clone() : Tensor();
        const Tensor z = noise ? in[5] : Tensor();
        b.sampler_step(x, state, in[1], in[2], z, step, 3.0f);
        if (!K) return x;
        const std::vector<float> xs = x.to_floats(), ss = state.to_floats();
        std::vector<float> both(xs);
        both.insert(both.end(), ss.begin(), ss.end());
        return Tensor::from_floats({(int64_t)both.size()}, both);
      };
    };
    t.push_back(cpu_one_function({"sampler_step_k4_noise_guided_2x8x8x4",
                 {{{2, 8, 8, 4}}, {{4, 8, 8, 4}}, {{2, 35}, 0.5f}, {{1}, 1, 0, {1.0f}}, {{4, 2, 8, 8, 4}},
                  {{2, 2, 8, 8, 4}}},
                 plan_step(4, true), tol::kPointwise, false}, "SamplerPlans.MatchDiffusersSchedulers"));
    t.push_back(cpu_one_function({"sampler_step_k2_unguided_3x5x7x4",
                 {{{3, 5, 7, 4}}, {{3, 5, 7, 4}}, {{2, 15}, 0.5f}, {{1}, 1, 0, {1.0f}}, {{2, 3, 5, 7, 4}}},
                 plan_step(2, false), tol::kPointwise, false}, "SamplerPlans.MatchDiffusersSchedulers"));
    t.push_back(cpu_one_function({"sampler_step_k0_noise_guided_1x5x7x4",
                 {{{1, 5, 7, 4}}, {{2, 5, 7, 4}}, {{2, 3}, 0.5f}, {{1}, 1, 0, {0.0f}}, {{1}}, {{2, 1, 5, 7, 4}}},
                 plan_step(0, true), tol::kPointwise, false}, "SamplerPlans.MatchDiffusersSchedulers"));
    // Inpainting's blend after unit 1 (step = 2 reads table row 1 of 3): a mask of 0s and 1s made
    // from a random input's sign, so both regions show; a wrong row, column or mask sense shows.
    t.push_back(cpu_one_function({"inpaint_blend_2x5x7x4",
                 {{{2, 5, 7, 4}}, {{2, 5, 7, 4}}, {{2, 5, 7, 4}}, {{2, 5, 7, 4}}, {{3, 2}, 0.8f}, {{1}, 1, 0, {2.0f}}},
                 [](Backend& b, const Ins& in, DType) {
                   Tensor x = in[0].clone();
                   std::vector<float> m = in[1].to_floats();
                   for (float& v : m) v = v > 0 ? 1.0f : 0.0f;
                   const Tensor mask = Tensor::from_floats(in[1].shape(), m).to(b.device());
                   b.inpaint_blend(x, mask, in[2], in[3], in[4], in[5]);
                   return x;
                 },
                 tol::kPointwise, false}, "Inpaint.LatentsAndImagesMatchDiffusers"));
    // The denoised estimate of unit 1 (table row 1 of 3), guided and not: a wrong row, column or
    // guidance shows.
    for (const bool guided : {true, false})
      t.push_back(cpu_one_function({guided ? "denoised_guided_2x5x7x4" : "denoised_unguided_3x5x7x4",
                   {{{guided ? 2 : 3, 5, 7, 4}}, {{guided ? 4 : 3, 5, 7, 4}}, {{3, 2}, 0.8f}, {{1}, 1, 0, {1.0f}}},
                   [](Backend& b, const Ins& in, DType) {
                     Tensor out = Tensor::empty(in[0].shape(), DType::F32, b.device());
                     b.denoised(in[0], in[1], in[2], in[3], 3.0f, out);
                     return out;
                   },
                   tol::kPointwise, false}, "Previews.DenoisedMatchesDiffusers"));
    // Guidance rescale of 2 and 3 samples (eps 2B rows): a wrong half, sample stride, mean, Bessel
    // correction or mix shows; values of scale 3 about an offset 0.5, so the means count.
    // 2×16×16×4: more values per sample than a block has threads.
    for (const Shape& s : {Shape{2, 5, 7, 4}, Shape{3, 5, 7, 4}, Shape{2, 16, 16, 4}})
      t.push_back(cpu_one_function({"guidance_rescale_" + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" +
                                        std::to_string(s[2]) + "x" + std::to_string(s[3]),
                   {{{2 * s[0], s[1], s[2], s[3]}, 3.0f, 0.5f}},
                   [](Backend& b, const Ins& in, DType dt) {
                     // fp32 out whatever eps's dtype; cast to the pass's dtype for the comparison.
                     const Tensor out = b.guidance_rescale(in[0], 7.5f, 0.7f);
                     return dt == DType::F32 ? out : b.cast(out, dt);
                   },
                   tol::kPointwise}, "Sd2.FolderMatchesDiffusers"));
    // A ControlNet residual at a unit's scale: table row 1 of 3, column 2 of 4, added to rows 2..3
    // of 4 (guess mode's conditional half) or to all rows; a wrong row, column or offset shows. The
    // table and step are fp32 in every pass (cast back from the pass's dtype: 1.0 is exact).
    for (const int64_t offset : {0, 2})
      t.push_back(cpu_one_function({offset ? "add_scaled_at_rows2of4_4x5x7x8" : "add_scaled_at_4x5x7x8",
                   {{{4, 5, 7, 8}}, {{offset ? 2 : 4, 5, 7, 8}}, {{3, 4}, 0.8f}, {{1}, 1, 0, {1.0f}}},
                   [offset](Backend& b, const Ins& in, DType) {
                     auto f32 = [&b](const Tensor& t) { return t.dtype() == DType::F32 ? t : b.cast(t, DType::F32); };
                     return b.add_scaled_at(in[0], in[1], f32(in[2]), f32(in[3]), 2, offset);
                   },
                   tol::kPointwise}, "OpsHand.AddScaledAtAddsTheUnitsScaleToItsRows"));
    // x / divisors[step], repeated: divisor row 2 of 3 (the input of the sigma-space samplers).
    t.push_back(cpu_one_function({"scale_repeat_2x8x8x4_x2",
                 {{{2, 8, 8, 4}, 5.0f}, {{3}, 1, 0, {14.6f, 3.7f, 1.02f}}, {{1}, 1, 0, {1.0f}}},
                 [](Backend& b, const Ins& in, DType dt) {
                   return b.scale_repeat_batch(in[0].dtype() == DType::F32 ? in[0] : b.cast(in[0], DType::F32),
                                               in[1], in[2], 2, dt);
                 },
                 tol::kPointwise, false}, "SamplerPlans.MatchDiffusersSchedulers"));
    t.push_back({"timestep_embedding_at_5x320",
                 {{{4}, 1, 0, {981.0f, 501.0f, 21.0f, 1.0f}}, {{1}, 1, 0, {2.0f}}},
                 [](Backend& b, const Ins& in, DType dt) { return b.timestep_embedding_at(in[0], in[1], 5, 320, dt); },
                 tol::kPointwise, false});
    // The decoder's image as 8-bit pixels: a VAE-sized image with values past both clamps, and the
    // values every conversion must get right (the clamp ends, NaN -> 0, infinities, -0).
    auto image = [](Backend& b, const Ins& in, DType) {
      Tensor out = Tensor::empty(in[0].shape(), DType::U8, in[0].device());
      b.image_to_u8(in[0], out);
      return out;
    };
    OpCase img = cpu_one_function({"image_u8_1x512x512x3", {{{1, 512, 512, 3}, 0.7f}}, image, tol::kExact},
                                  "OpsHand.ImageToU8RoundsLikeNumpy");
    img.u8_out = true;
    t.push_back(img);
    OpCase odd{"image_u8_odd_1x1x5x3_special",
               {{{1, 1, 5, 3}, 1, 0,
                 {-1.0f, 1.0f, 0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1.5f, -1.5f, 0.999f, -0.999f,
                  0.003921f, -0.996078f, 0.5f, -0.5f}}},
               image, tol::kExact};
    odd = cpu_one_function(odd, "OpsHand.ImageToU8RoundsLikeNumpy");
    odd.u8_out = true;
    t.push_back(odd);
    for (OpCase& c : t) {
      c.op = op_of(c.name);
      c.casts_bf16 = c.op == Op::kCast && c.name.find("bf16") != std::string::npos;
    }
    return t;
  }();
  return table;
}

// gtest parameter names for a suite instantiated over the table's indices.
inline std::string case_name(const testing::TestParamInfo<size_t>& info) {
  return op_cases()[info.param].name;
}

}  // namespace sdgen::optest
