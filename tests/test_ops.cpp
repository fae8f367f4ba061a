// Op tests: (1) the table of tests/op_cases.h, every case run on the fast CPU backend against the
// plain one, in fp32, fp16 and bf16; (2) hand-derived values for small inputs (delta kernels, closed-form
// norms and softmaxes, visible-key patterns), checked on both CPU backends so the plain path is
// held to math, not only to itself; (3) the op layer's precondition checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "op_cases.h"
#include "sdgen/error.h"
#include "sdgen/half.h"
#include "sdgen/ops.h"

namespace sdgen {
namespace {

Backend& fast_cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(false);
  return *b;
}
Backend& plain_cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(true);
  return *b;
}
std::vector<Backend*> cpu_backends() { return {&plain_cpu(), &fast_cpu()}; }

Tensor T(const Shape& s, const std::vector<float>& v) { return Tensor::from_floats(s, v); }

// ---- (1) the table ----

// Another backend (CUDA, emulated CUDA) runs the same table with its own instantiation: a
// TEST_P calling optest::expect_case_matches(case, its_backend, plain_cpu(), dtype).
class OpsTable : public testing::TestWithParam<size_t> {};

void expect_fast_matches_plain(const optest::OpCase& c, DType dtype) {
  if (!c.cpu_one_function.empty())
    GTEST_SKIP() << "plain and fast CPU paths are one function here; held to hand-derived values by "
                 << c.cpu_one_function;
  optest::expect_case_matches(c, fast_cpu(), plain_cpu(), dtype);
}
TEST_P(OpsTable, Fp32) { expect_fast_matches_plain(optest::op_cases()[GetParam()], DType::F32); }
TEST_P(OpsTable, Fp16) { expect_fast_matches_plain(optest::op_cases()[GetParam()], DType::F16); }
TEST_P(OpsTable, Bf16) { expect_fast_matches_plain(optest::op_cases()[GetParam()], DType::BF16); }
// Where bf16 runs on oneDNN (above), the OpenBLAS path that widens bf16 (CPUs without bf16 dot
// products, builds without oneDNN) is held to the same table here.
TEST_P(OpsTable, Bf16Widened) {
  if (!cpu::bf16_gemm_available()) GTEST_SKIP() << "the Bf16 rows run the widening path already";
  struct Widen {  // back on however the case ends (a fatal assertion returns early)
    Widen() { cpu::set_bf16_gemm(false); }
    ~Widen() { cpu::set_bf16_gemm(true); }
  } widen;
  expect_fast_matches_plain(optest::op_cases()[GetParam()], DType::BF16);
}

INSTANTIATE_TEST_SUITE_P(OpsCpuFast, OpsTable, testing::Range<size_t>(0, optest::op_cases().size()),
                         optest::case_name);

// ---- (2) hand-derived values ----

void expect_values(const Tensor& y, const Shape& shape, const std::vector<double>& want,
                   double tol) {
  ASSERT_EQ(y.shape(), shape);
  std::vector<float> got = y.to_floats();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_EQ(got[i], want[i]) << "element " << i;
    } else {
      EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
    }
  }
}

std::vector<float> iota_values(int64_t n, float start, float step) {
  std::vector<float> v((size_t)n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + step * (float)i;
  return v;
}

TEST(OpsHand, ConvDeltaKernelCopiesAndShifts) {
  const int64_t H = 4, W = 5, C = 3;
  std::vector<float> xv = iota_values(H * W * C, -3.0f, 0.25f);
  Tensor x = T({1, H, W, C}, xv);
  const std::vector<float> bias = {0.5f, -1.0f, 2.0f};
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    // Centre tap: identity per channel, plus bias.
    std::vector<float> wv(C * 9 * C, 0.0f);
    for (int64_t c = 0; c < C; ++c) wv[((c * 3 + 1) * 3 + 1) * C + c] = 1.0f;
    std::vector<double> want(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) want[i] = xv[i] + bias[i % C];
    expect_values(b->conv2d(x, T({C, 3, 3, C}, wv), T({C}, bias), 1, 1, Tensor()), {1, H, W, C}, want, 0);
    // Top-left tap: y[oy][ox] = x[oy-1][ox-1], zero outside the image.
    std::fill(wv.begin(), wv.end(), 0.0f);
    for (int64_t c = 0; c < C; ++c) wv[c * 9 * C + c] = 1.0f;
    for (int64_t oy = 0; oy < H; ++oy)
      for (int64_t ox = 0; ox < W; ++ox)
        for (int64_t c = 0; c < C; ++c)
          want[(oy * W + ox) * C + c] =
              (oy > 0 && ox > 0) ? xv[((oy - 1) * W + ox - 1) * C + c] : 0.0;
    expect_values(b->conv2d(x, T({C, 3, 3, C}, wv), Tensor(), 1, 1, Tensor()), {1, H, W, C}, want, 0);
  }
}

TEST(OpsHand, ConvOnesCountsValidTaps) {
  // All-ones 3×3 kernel on an all-ones 4×4 image: each output counts its in-image taps.
  Tensor x = T({1, 4, 4, 1}, std::vector<float>(16, 1.0f));
  Tensor w = T({1, 3, 3, 1}, std::vector<float>(9, 1.0f));
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    expect_values(b->conv2d(x, w, Tensor(), 1, 1, Tensor()), {1, 4, 4, 1},
                  {4, 6, 6, 4, 6, 9, 9, 6, 6, 9, 9, 6, 4, 6, 6, 4}, 0);
    // Stride 2: outputs at (0,0), (0,2), (2,0), (2,2) of the above.
    expect_values(b->conv2d(x, w, Tensor(), 2, 1, Tensor()), {1, 2, 2, 1}, {4, 6, 6, 9}, 0);
    // 1×1 conv mixing two channels: [1, 2] · [[3, 4], [5, 6]]ᵀ = [11, 17].
    expect_values(b->conv2d(T({1, 1, 1, 2}, {1, 2}), T({2, 1, 1, 2}, {3, 4, 5, 6}), Tensor(), 1, 0, Tensor()),
                  {1, 1, 1, 2}, {11, 17}, 0);
    // The fused adds: the output's shape (a shortcut) and [N, Cout] per image (a time embedding).
    expect_values(b->conv2d(x, w, Tensor(), 2, 1, T({1, 2, 2, 1}, {10, 20, 30, 40})), {1, 2, 2, 1}, {14, 26, 36, 49}, 0);
    expect_values(b->conv2d(x, w, T({1}, {0.5f}), 2, 1, T({1, 1}, {-4})), {1, 2, 2, 1}, {0.5, 2.5, 2.5, 5.5}, 0);
  }
}

TEST(OpsHand, Linear) {
  Tensor x = T({2, 3}, {1, 2, 3, -1, 0.5f, 2});
  Tensor w = T({2, 3}, {1, 0, 0, 0, 1, 1});
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    expect_values(b->linear(x, w, T({2}, {0.5f, -1}), Tensor()), {2, 2}, {1.5, 4, -0.5, 1.5}, 0);
    // The residual is added to every output: bias + x·wᵀ + r.
    expect_values(b->linear(x, w, T({2}, {0.5f, -1}), T({2, 2}, {10, 20, 30, 40})), {2, 2}, {11.5, 24, 29.5, 41.5}, 0);
  }
}

double silu_d(double v) { return v / (1.0 + std::exp(-v)); }
double gelu_d(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

TEST(OpsHand, GroupNormKnownVectors) {
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    // One group of [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
    const double r = 1.0 / std::sqrt(1.25 + 1e-5);
    expect_values(b->group_norm(T({1, 1, 4}, {1, 2, 3, 4}), T({4}, {1, 1, 1, 1}),
                                T({4}, {0, 0, 0, 0}), 1, 1e-5f, false),
                  {1, 1, 4}, {-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r}, 1e-6);
    // Two groups over two pixels: channels (0,1) hold {1,3,1,3} -> mean 2, var 1; channels
    // (2,3) hold {10,30,10,30} -> mean 20, var 100. Then gamma/beta per channel, then SiLU.
    Tensor x = T({1, 2, 1, 4}, {1, 3, 10, 30, 3, 1, 30, 10});
    Tensor g = T({4}, {2, 2, 1, 1}), be = T({4}, {0, 0, 5, 5});
    const double a = 1.0 / std::sqrt(1.0 + 1e-5), c = 10.0 / std::sqrt(100.0 + 1e-5);
    std::vector<double> want = {-2 * a, 2 * a, 5 - c, 5 + c, 2 * a, -2 * a, 5 + c, 5 - c};
    expect_values(b->group_norm(x, g, be, 2, 1e-5f, false), {1, 2, 1, 4}, want, 1e-6);
    for (double& v : want) v = silu_d(v);
    expect_values(b->group_norm(x, g, be, 2, 1e-5f, true), {1, 2, 1, 4}, want, 1e-6);
    // A constant group has zero variance: output is beta.
    expect_values(
        b->group_norm(T({1, 3, 1}, {7, 7, 7}), T({1}, {3}), T({1}, {0.25f}), 1, 1e-5f, false),
        {1, 3, 1}, {0.25, 0.25, 0.25}, 0);
  }
}

TEST(OpsHand, LayerNormKnownVector) {
  const double r = 1.0 / std::sqrt(1.25 + 1e-5);
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    expect_values(
        b->layer_norm(T({2, 4}, {1, 2, 3, 4, 4, 3, 2, 1}), T({4}, {1, 1, 2, 1}),
                      T({4}, {0, 0, 0, 1}), 1e-5f),
        {2, 4},
        {-1.5 * r, -0.5 * r, 1.0 * r, 1.5 * r + 1, 1.5 * r, 0.5 * r, -1.0 * r, -1.5 * r + 1}, 1e-6);
  }
}

TEST(OpsHand, SoftmaxOfLogs) {
  const float l2 = std::log(2.0f), l3 = std::log(3.0f);
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    // e^0 : e^ln2 : e^ln3 = 1 : 2 : 3. The second row, shifted by 1000, overflows exp() unless
    // the row max is subtracted first (its float rounding moves the ratios by ~1e-4).
    Tensor y = b->softmax(T({2, 3}, {0, l2, l3, 1000, 1000 + l2, 1000 + l3}));
    expect_values(y, {2, 3}, {1 / 6.0, 2 / 6.0, 3 / 6.0, 1 / 6.0, 2 / 6.0, 3 / 6.0}, 1.5e-4);
    expect_values(y.slice0(0, 1), {1, 3}, {1 / 6.0, 2 / 6.0, 3 / 6.0}, 1e-6);
  }
}

TEST(OpsHand, AttentionWeightsAndHeads) {
  const float l2 = std::log(2.0f), l3 = std::log(3.0f);
  // Two heads of width 1 over three keys. Head 0: q = 1, keys 0, ln2, ln3 -> weights 1/6, 2/6,
  // 3/6 of values 6, 0, 12 -> 7. Head 1: keys all 0 -> uniform mean of 3, 6, 9 -> 6.
  Tensor q = T({1, 1, 2}, {1, 2});
  Tensor k = T({1, 3, 2}, {0, 0, l2, 0, l3, 0});
  Tensor v = T({1, 3, 2}, {6, 3, 0, 6, 12, 9});
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    expect_values(b->attention(q, k, v, 2, 1.0f, false), {1, 1, 2}, {7, 6}, 1e-5);
  }
}

TEST(OpsHand, CausalAttentionSeesOnlyEarlierKeys) {
  // Keys all zero: every visible key weighs the same, so row i is the mean of v[0..i]; row 0 is
  // v[0] whatever q is.
  Tensor q = T({1, 3, 2}, {5, -3, 0.5f, 2, -1, 4});
  Tensor k = T({1, 3, 2}, std::vector<float>(6, 0.0f));
  Tensor v = T({1, 3, 2}, {1, 2, 3, 4, 5, 6});
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    expect_values(b->attention(q, k, v, 1, 0.7f, true), {1, 3, 2}, {1, 2, 2, 3, 3, 4}, 1e-6);
    // Without the mask every row is the mean of all three.
    expect_values(b->attention(q, k, v, 1, 0.7f, false), {1, 3, 2}, {3, 4, 3, 4, 3, 4}, 1e-6);
  }
}

TEST(OpsHand, TimestepEmbeddingClosedForm) {
  const int dim = 320, half = 160;
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    Tensor y = b->timestep_embedding({0.0f, 1.0f, 999.0f}, dim, DType::F32);
    ASSERT_EQ(y.shape(), (Shape{3, dim}));
    std::vector<float> e = y.to_floats();
    for (int i = 0; i < half; ++i) {
      const double f = std::pow(10000.0, -(double)i / half);  // f_i = exp(-ln(10000)·i/half)
      EXPECT_EQ(e[i], 1.0f) << i;                             // t = 0: cos 0
      EXPECT_EQ(e[half + i], 0.0f) << i;                      // sin 0
      EXPECT_NEAR(e[dim + i], std::cos(f), 1e-6) << i;        // t = 1, cos half first
      EXPECT_NEAR(e[dim + half + i], std::sin(f), 1e-6) << i;
      // t = 999: the fp32 argument 999·f carries ~6e-5 rad of rounding (as in diffusers).
      EXPECT_NEAR(e[2 * dim + i], std::cos(999.0 * f), 2e-4) << i;
      EXPECT_NEAR(e[2 * dim + half + i], std::sin(999.0 * f), 2e-4) << i;
    }
    EXPECT_NEAR(e[dim], std::cos(1.0), 1e-7);  // f_0 = 1
  }
}

TEST(OpsHand, UpsampleConcatEmbeddingAddChannel) {
  std::vector<float> xv = iota_values(2 * 3 * 2, 0.0f, 1.0f);
  Tensor x = T({1, 2, 3, 2}, xv);
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    std::vector<double> up;
    for (int oy = 0; oy < 4; ++oy)
      for (int ox = 0; ox < 6; ++ox)
        for (int c = 0; c < 2; ++c) up.push_back(xv[((oy / 2) * 3 + ox / 2) * 2 + c]);
    expect_values(b->upsample_nearest2x(x), {1, 4, 6, 2}, up, 0);
    expect_values(b->concat_channels(T({1, 2, 2}, {1, 2, 3, 4}), T({1, 2, 1}, {5, 6})), {1, 2, 3},
                  {1, 2, 5, 3, 4, 6}, 0);
    expect_values(b->embedding({2, 0, 1, 2}, 2, T({3, 2}, {0, 1, 2, 3, 4, 5})), {2, 2, 2},
                  {4, 5, 0, 1, 2, 3, 4, 5}, 0);
    expect_values(b->add_channel(T({2, 2, 1}, {1, 2, 3, 4}), T({2, 1}, {10, 20})), {2, 2, 1},
                  {11, 12, 23, 24}, 0);
    expect_values(b->add(T({3}, {1, 2, 3}), T({3}, {0.5f, -2, 4})), {3}, {1.5, 0, 7}, 0);
    expect_values(b->scale(T({2}, {3, -0.5f}), 4.0f), {2}, {12, -2}, 0);
  }
}

// Padding (0, 1, 0, 1) as the VAE encoder's downsampler does, and all four sides at once: the input
// lands shifted by (top, left), every other element is zero.
TEST(OpsHand, PadPlacesInputAndZeroes) {
  Tensor x = T({1, 2, 2, 1}, {1, 2, 3, 4});
  Tensor x2 = T({1, 1, 1, 2}, {5, 6});
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    expect_values(b->pad(x, 0, 1, 0, 1), {1, 3, 3, 1}, {1, 2, 0, 3, 4, 0, 0, 0, 0}, 0);
    expect_values(b->pad(x, 1, 0, 1, 0), {1, 3, 3, 1}, {0, 0, 0, 0, 1, 2, 0, 3, 4}, 0);
    expect_values(b->pad(x2, 1, 1, 0, 2), {1, 3, 3, 2},
                  {0, 0, 0, 0, 0, 0, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0);
    expect_values(b->pad(x, 0, 0, 0, 0), {1, 2, 2, 1}, {1, 2, 3, 4}, 0);
  }
}

// A ControlNet residual at the unit's scale: step 1 reads table row 1, column 1 (0.5); rows 1..2 of
// three get 0.5·x added, row 0 stays base's. Step 0 reads row 0 (scale 0: guidance not yet started).
TEST(OpsHand, AddScaledAtAddsTheUnitsScaleToItsRows) {
  const Tensor base = T({3, 2}, {1, 2, 3, 4, 5, 6});
  const Tensor x = T({2, 2}, {10, 20, -30, 40});
  const Tensor table = T({2, 3}, {9, 0, 9, 7, 0.5f, 7});
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    expect_values(b->add_scaled_at(base, x, table, T({1}, {1.0f}), 1, 1), {3, 2}, {1, 2, 8, 14, -10, 26}, 0);
    expect_values(b->add_scaled_at(base, x, table, T({1}, {0.0f}), 1, 1), {3, 2}, {1, 2, 3, 4, 5, 6}, 0);
    expect_values(b->add_scaled_at(base, T({3, 2}, {2, 2, 2, 2, 2, 2}), table, T({1}, {1.0f}), 2, 0), {3, 2},
                  {15, 16, 17, 18, 19, 20}, 0);
  }
}

TEST(OpsHand, Activations) {
  const std::vector<float> xs = {0, 1, -1, 2, -3, 10};
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    std::vector<double> s, q, g;
    for (float v : xs) {
      s.push_back(silu_d(v));
      q.push_back(v / (1.0 + std::exp(-1.702 * v)));
      g.push_back(gelu_d(v));
    }
    expect_values(b->unary(T({6}, xs), Backend::Unary::kSilu), {6}, s, 1e-6);
    expect_values(b->unary(T({6}, xs), Backend::Unary::kQuickGelu), {6}, q, 1e-6);
    expect_values(b->unary(T({6}, xs), Backend::Unary::kGelu), {6}, g, 1e-6);
    expect_values(b->unary(T({6}, xs), Backend::Unary::kRelu), {6}, {0, 1, 0, 2, 0, 10}, 0);
    std::vector<double> th;
    for (float v : xs) th.push_back(std::tanh((double)v));
    expect_values(b->unary(T({6}, xs), Backend::Unary::kTanh), {6}, th, 1e-6);
    // torch.relu and torch.tanh pass a NaN through (a max(x, 0) written as a compare would give 0).
    const std::vector<float> nan = b->unary(T({1}, {NAN}), Backend::Unary::kRelu).to_floats();
    EXPECT_TRUE(std::isnan(nan[0]));
    EXPECT_TRUE(std::isnan(b->unary(T({1}, {NAN}), Backend::Unary::kTanh).to_floats()[0]));
    // geglu: first half value, second half gate.
    expect_values(b->geglu(T({2, 2}, {2, 1, -3, 0.5f})), {2, 1}, {2 * gelu_d(1), -3 * gelu_d(0.5)},
                  1e-6);
  }
}

TEST(OpsHand, CastRoundsToNearestEven) {
  // fp16 has 10 fraction bits: spacing 2^-10 at 1, largest finite 65504, smallest subnormal 2^-24.
  const std::vector<float> in = {1.0f,
                                 1.0f + std::ldexp(1.0f, -11),      // tie -> even (1)
                                 1.0f + 3 * std::ldexp(1.0f, -11),  // tie -> even (1 + 2^-9)
                                 65504.0f,
                                 65520.0f,  // rounds past the largest finite: inf
                                 -2.0f,
                                 std::ldexp(1.0f, -24),
                                 std::ldexp(1.0f, -25),          // tie between 0 and 2^-24 -> 0
                                 1.5f * std::ldexp(1.0f, -24)};  // tie -> 2·2^-24
  const std::vector<uint16_t> bits = {0x3C00, 0x3C00, 0x3C02, 0x7BFF, 0x7C00,
                                      0xC000, 0x0001, 0x0000, 0x0002};
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    Tensor h = b->cast(T({9}, in), DType::F16);
    ASSERT_EQ(h.dtype(), DType::F16);
    for (size_t i = 0; i < bits.size(); ++i) EXPECT_EQ(h.data_as<uint16_t>()[i], bits[i]) << i;
    expect_values(b->cast(h, DType::F32), {9},
                  {1, 1, 1 + std::ldexp(1.0, -9), 65504, INFINITY, -2, std::ldexp(1.0, -24), 0,
                   std::ldexp(1.0, -23)},
                  0);
  }
}

TEST(OpsHand, CastRoundsToNearestEvenBf16) {
  // bf16 has 7 fraction bits: spacing 2^-7 at 1; fp32's exponent range, so no overflow below
  // 2^128·(1 - 2^-9) and subnormals down to 2^-133.
  const std::vector<float> in = {1.0f,
                                 1.0f + std::ldexp(1.0f, -8),      // tie -> even (1)
                                 1.0f + 3 * std::ldexp(1.0f, -8),  // tie -> even (1 + 2^-6)
                                 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20),  // above the tie: up
                                 bf16_bits_to_float(0x7F7F) + std::ldexp(1.0f, 119),  // tie 0x7F7F|inf -> inf (even)
                                 -2.0f,
                                 std::ldexp(1.0f, -133),  // smallest bf16 subnormal, exact
                                 std::ldexp(1.0f, -134),  // tie between 0 and 2^-133 -> 0
                                 65520.0f,                // 0x477FF000 -> 0x4780 (above the tie)
                                 NAN};
  const std::vector<uint16_t> bits = {0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x7F80,
                                      0xC000, 0x0001, 0x0000, 0x4780};
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    Tensor h = b->cast(T({10}, in), DType::BF16);
    ASSERT_EQ(h.dtype(), DType::BF16);
    for (size_t i = 0; i < bits.size(); ++i) EXPECT_EQ(h.data_as<uint16_t>()[i], bits[i]) << i;
    const uint16_t nan_bits = h.data_as<uint16_t>()[9];
    EXPECT_TRUE((nan_bits & 0x7F80) == 0x7F80 && (nan_bits & 0x7F) != 0) << "NaN stays NaN: " << nan_bits;
    const std::vector<float> back = b->cast(h, DType::F32).to_floats();
    const std::vector<double> want = {1, 1, 1 + std::ldexp(1.0, -6), 1 + std::ldexp(1.0, -7), INFINITY, -2,
                                      std::ldexp(1.0, -133), 0, 65536};
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(back[i], want[i]) << i;
    EXPECT_TRUE(std::isnan(back[9]));
    // fp16 -> bf16 is one rounding of the exact value: 1 + 2^-10 (below half a bf16 ulp) -> 1,
    // 1 + 3·2^-8 (exact in fp16, a bf16 tie) -> even.
    Tensor f16 = b->cast(T({2}, {1.0f + std::ldexp(1.0f, -10), 1.0f + 3 * std::ldexp(1.0f, -8)}), DType::F16);
    expect_values(b->cast(b->cast(f16, DType::BF16), DType::F32), {2}, {1, 1 + std::ldexp(1.0, -6)}, 0);
  }
}

TEST(OpsHand, ImageToU8RoundsLikeNumpy) {
  // diffusers' postprocess: clamp(x/2 + 0.5, 0, 1) in fp32, then numpy's (·255).round(), which
  // rounds half to even. The six ties were found with numpy (float32 x whose fl(fl(x/2 + 0.5)·255)
  // is k + 0.5 exactly); numpy gives 134, 98, 74 (even below) and 150, 180, 228 (even above).
  // The rest by hand: -1 -> 0, 1 -> 255, 0 -> 127.5 -> 128, 0.5 -> 191.25 -> 191,
  // -0.5 -> 63.75 -> 64, beyond ±1 clamps, NaN -> 0 (a NaN fails both clamp tests).
  const std::vector<float> in = {0.0549019463f, -0.227450952f, -0.41568628f, 0.172549024f,
                                 0.407843083f, 0.784313619f, -1.0f, 1.0f, 0.0f, 0.5f, -0.5f,
                                 3.0f, -7.0f, NAN, INFINITY, -INFINITY};
  const std::vector<uint8_t> want = {134, 98, 74, 150, 180, 228, 0, 255, 128, 191, 64, 255, 0, 0, 255, 0};
  for (Backend* b : cpu_backends()) {
    SCOPED_TRACE(b->name());
    Tensor out = Tensor::empty({1, 1, 16, 1}, DType::U8);
    b->image_to_u8(T({1, 1, 16, 1}, in), out);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ((int)out.data_as<uint8_t>()[i], (int)want[i]) << i;
  }
}

TEST(OpsHand, Fp16InputsComputeInFp32) {
  // fp16 in, fp16 out; 1000 + 1 is exact in fp32 and in fp16 (spacing 0.5 at 1000).
  Tensor a = fast_cpu().cast(T({2}, {1000, 3}), DType::F16);
  Tensor b = fast_cpu().cast(T({2}, {1, 0.25f}), DType::F16);
  for (Backend* be : cpu_backends()) {
    SCOPED_TRACE(be->name());
    Tensor y = be->add(a, b);
    ASSERT_EQ(y.dtype(), DType::F16);
    expect_values(y, {2}, {1001, 3.25}, 0);
  }
}

TEST(OpsHand, OpsRouteToSelectedCpuBackend) {
  Tensor x = T({1, 3}, {1, 2, 3});
  Tensor w = T({1, 3}, {1, 1, 1});
  set_cpu_plain(true);
  EXPECT_EQ(backend_for(Device::CPU).name(), "cpu-plain");
  expect_values(ops::linear(x, w), {1, 1}, {6}, 0);
  set_cpu_plain(false);
  EXPECT_EQ(backend_for(Device::CPU).name(), "cpu");
  expect_values(ops::linear(x, w), {1, 1}, {6}, 0);
}

// ---- (3) the op layer's precondition checks ----

// Runs f, expects an sdgen::Error whose message names the op and contains `part`.
template <class F>
void expect_rejected(F f, const std::string& op, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << op << ": no error thrown";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.code(), ExitCode::kInternal);
    EXPECT_NE(m.find(op + ":"), std::string::npos) << m;
    EXPECT_NE(m.find(part), std::string::npos) << m;
  }
}

TEST(OpsChecks, RejectBadShapesWithNamedMessages) {
  Tensor x = Tensor::zeros({1, 4, 4, 3});
  expect_rejected(
      [&] {
        ops::conv2d(x, Tensor::zeros({8, 3, 3, 4}), Tensor(), 1, 1);
      },
      "conv2d", "[8, 3, 3, 4]");
  expect_rejected(
      [&] {
        ops::conv2d(x, Tensor::zeros({8, 3, 1, 3}), Tensor(), 1, 1);
      },
      "conv2d", "square");
  expect_rejected(
      [&] {
        ops::conv2d(x, Tensor::zeros({8, 3, 3, 3}), Tensor::zeros({7}), 1, 1);
      },
      "conv2d", "bias [7]");
  expect_rejected(
      [&] {
        ops::conv2d(x, Tensor::zeros({8, 3, 3, 3}), Tensor(), 0, 1);
      },
      "conv2d", "stride");
  expect_rejected(
      [&] {
        ops::conv2d(x.reshape({16, 3}), Tensor::zeros({8, 3, 3, 3}), Tensor(), 1, 1);
      },
      "conv2d", "[16, 3]");
  expect_rejected(
      [&] {
        ops::linear(Tensor::zeros({2, 5}), Tensor::zeros({3, 4}));
      },
      "linear", "[2, 5]");
  expect_rejected(
      [&] {
        ops::linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), Tensor::zeros({4}));
      },
      "linear", "bias");
  expect_rejected(
      [&] {
        ops::linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}, DType::F16));
      },
      "linear", "dtypes");
  expect_rejected(
      [&] {
        ops::group_norm(Tensor::zeros({1, 2, 10}), Tensor::zeros({10}), Tensor::zeros({10}), 3,
                        1e-5f, false);
      },
      "group_norm", "3 groups");
  expect_rejected(
      [&] {
        ops::group_norm(Tensor::zeros({1, 2, 10}), Tensor::zeros({9}), Tensor::zeros({10}), 2,
                        1e-5f, false);
      },
      "group_norm", "gamma");
  expect_rejected(
      [&] {
        ops::layer_norm(Tensor::zeros({2, 8}), Tensor::zeros({8}), Tensor::zeros({7}), 1e-5f);
      },
      "layer_norm", "beta");
  Tensor q = Tensor::zeros({2, 5, 12});
  expect_rejected([&] { ops::attention(q, q, q, 5, 1.0f, false); }, "attention", "5 heads");
  expect_rejected(
      [&] {
        ops::attention(q, Tensor::zeros({2, 3, 12}), Tensor::zeros({2, 4, 12}), 2, 1, false);
      },
      "attention", "k and v");
  expect_rejected(
      [&] {
        ops::attention(q, Tensor::zeros({1, 3, 12}), Tensor::zeros({1, 3, 12}), 2, 1, false);
      },
      "attention", "batch");
  expect_rejected(
      [&] {
        ops::attention(q, Tensor::zeros({2, 3, 8}), Tensor::zeros({2, 3, 8}), 2, 1, false);
      },
      "attention", "channel");
  expect_rejected([&] { ops::softmax(Tensor()); }, "softmax", "undefined");
  expect_rejected([&] { ops::add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})); }, "add", "[3, 2]");
  expect_rejected(
      [&] {
        ops::add_channel(Tensor::zeros({2, 4, 4, 3}), Tensor::zeros({2, 4}));
      },
      "add_channel", "[N, C]");
  expect_rejected([&] { ops::geglu(Tensor::zeros({2, 5})); }, "geglu", "even");
  expect_rejected(
      [&] {
        ops::upsample_nearest2x(Tensor::zeros({4, 4, 3}));
      },
      "upsample_nearest2x", "NHWC");
  expect_rejected([&] { ops::pad(Tensor::zeros({4, 4, 3}), 0, 1, 0, 1); }, "pad", "NHWC");
  expect_rejected([&] { ops::pad(Tensor::zeros({1, 4, 4, 3}), 0, -1, 0, 1); }, "pad", "negative padding");
  expect_rejected(
      [&] {
        ops::concat_channels(Tensor::zeros({1, 4, 4, 3}), Tensor::zeros({1, 4, 5, 3}));
      },
      "concat_channels", "[1, 4, 5, 3]");
  expect_rejected(
      [&] {
        ops::embedding({0, 5}, 1, Tensor::zeros({5, 2}), Device::CPU);
      },
      "embedding", "id 5");
  expect_rejected(
      [&] {
        ops::embedding({0, 1, 2}, 2, Tensor::zeros({5, 2}), Device::CPU);
      },
      "embedding", "3 ids");
  expect_rejected([&] { ops::timestep_embedding({1.0f}, 7, DType::F32, Device::CPU); },
                  "timestep_embedding", "even");
}

TEST(OpsChecks, AcceptsEveryDocumentedLayout) {
  // The documented shapes go through: NHWC conv with OHWI weights, [out, in] linear over [N,L,C].
  EXPECT_EQ(ops::conv2d(Tensor::zeros({2, 5, 7, 3}), Tensor::zeros({4, 3, 3, 3}),
                        Tensor::zeros({4}), 2, 1)
                .shape(),
            (Shape{2, 3, 4, 4}));
  EXPECT_EQ(ops::linear(Tensor::zeros({2, 7, 3}), Tensor::zeros({5, 3})).shape(), (Shape{2, 7, 5}));
  EXPECT_EQ(ops::attention(Tensor::zeros({2, 6, 8}), Tensor::zeros({2, 3, 8}),
                           Tensor::zeros({2, 3, 8}), 2, 0.5f, false)
                .shape(),
            (Shape{2, 6, 8}));
  EXPECT_EQ(ops::geglu(Tensor::zeros({2, 3, 8})).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(ops::timestep_embedding({1, 2}, 8, DType::F16, Device::CPU).dtype(), DType::F16);
}

}  // namespace
}  // namespace sdgen
