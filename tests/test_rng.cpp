// The torch CPU randn against values PyTorch prints for torch.manual_seed(42); torch.randn(5) and
// against goldens; the Philox (torch CUDA) randn against Random123's known answers and published
// torch CUDA outputs; LatentNoise's draws.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "core/rng.h"
#include "io/safetensors.h"

using namespace sdgen;

TEST(Rng, TorchCpuRandnSmallMatchesDesignValues) {
  // PyTorch: manual_seed(42); randn(5) (the < 16 path: double Box–Muller, cached pair).
  TorchCpuRandn r(42);
  std::vector<float> v = r.randn(5);
  const float ref[5] = {0.33669037f, 0.1288094f, 0.23446237f, 0.23033303f, -1.1228564f};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(v[i], ref[i], 1e-7f) << i;
}

// torch.randn goldens (tests/data/golden/randn.safetensors): single calls for many (seed, size)
// pairs, sizes below, at and above 16 and not multiples of 16; seeds past 2^32; and sequences of
// calls on one generator (the mt19937 stream and the cached Box–Muller value carry over).
// Both paths are bit-exact to x86-64 torch (its AVX2 kernel for >= 16 values; the goldens come
// from the PyPI wheel on x86-64). A torch without that kernel (e.g. aarch64) would differ in the
// last bits for >= 16 values, so goldens must be regenerated on x86-64. The ulp histogram is
// printed to show how far off a failure is.
TEST(Rng, TorchCpuRandnMatchesGoldens) {
  auto f = SafetensorsFile::open(std::string(SDGEN_TEST_DATA) + "/golden/randn.safetensors");
  std::map<std::string, std::vector<const StTensorInfo*>> sequences;
  int checked = 0;
  float worst = 0;
  int64_t worst_ulps = 0;
  std::map<int64_t, int> ulp_histogram;  // distance in float ulps -> count, for the >= 16 path
  auto check = [&](TorchCpuRandn& r, const StTensorInfo& t) {
    std::vector<float> ref = f->to_floats(t);
    std::vector<float> ours = r.randn(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      const float d = std::fabs(ours[i] - ref[i]);
      worst = std::max(worst, d);
      if (ref.size() >= 16) {
        int32_t a, b;
        std::memcpy(&a, &ours[i], 4);
        std::memcpy(&b, &ref[i], 4);
        // Same-sign floats: the bit patterns' difference is the distance in ulps.
        const int64_t ulps = (a < 0) == (b < 0) ? std::llabs((int64_t)a - b) : 1000000;
        worst_ulps = std::max(worst_ulps, ulps);
        ulp_histogram[std::min<int64_t>(ulps, 99)]++;
      }
      EXPECT_EQ(ours[i], ref[i]) << t.name << "[" << i << "]";
    }
    ++checked;
  };
  for (const StTensorInfo& t : f->tensors()) {
    // seed<S>_shape_<...>  or  seq_<x>_call<k>_seed<S>_shape_<...>
    if (t.name.rfind("seq_", 0) == 0) {
      sequences[t.name.substr(0, 5)].push_back(&t);
      continue;
    }
    uint64_t seed = std::stoull(t.name.substr(4, t.name.find('_') - 4));
    TorchCpuRandn r(seed);
    check(r, t);
  }
  for (auto& [name, calls] : sequences) {
    std::sort(calls.begin(), calls.end(), [](auto* a, auto* b) { return a->name < b->name; });
    const std::string& first = calls[0]->name;
    size_t s = first.find("_seed") + 5;
    TorchCpuRandn r(std::stoull(first.substr(s, first.find('_', s) - s)));
    for (const StTensorInfo* t : calls) check(r, *t);
  }
  EXPECT_GE(checked, 20);
  std::printf("randn goldens: %d tensors, max |diff| %.3g, max %lld ulp; ulp histogram:", checked, worst,
              (long long)worst_ulps);
  for (auto [u, n] : ulp_histogram) std::printf(" %lld:%d", (long long)u, n);
  std::printf("\n");
}

// ---- --rng philox: torch.randn on a CUDA generator (core/rng.h) ----

// Random123's known-answer vectors for Philox4x32-10 (DEShawResearch/random123, tests/kat_vectors,
// the three "philox4x32 10" lines: counter[4] key[2] -> output[4]); curand's Philox4_32_10 is the
// same function.
TEST(Rng, PhiloxKnownAnswerVectors) {
  struct Kat {
    std::array<uint32_t, 4> ctr;
    std::array<uint32_t, 2> key;
    std::array<uint32_t, 4> out;
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) EXPECT_EQ(PhiloxRandn::philox4x32_10(k.ctr, k.key), k.out);
}

// Box–Muller by hand on the KAT outputs: u = x·2^-32 + 2^-33, v = 2π·(y·2^-32 + 2^-33), value
// sqrt(-2 ln u)·sin v, in double. curand forms u and v in float (x, y rounded to 24 bits, then one
// FMA with float constants), which moves v by up to 2π·2^-25 and u by a relative 2^-24: the float
// result is within about 2e-7·sqrt(-2 ln u) of the exact value.
TEST(Rng, PhiloxBoxMullerByHand) {
  const uint32_t xy[][2] = {{0x6627e8d5, 0xe169c58d}, {0x408f276d, 0x41c83b0e}, {0xd16cfe09, 0x94fdcceb},
                            {0, 0}, {0xffffffff, 0xffffffff}, {1, 0x80000000}};
  for (auto [x, y] : xy) {
    const double u = x * std::ldexp(1.0, -32) + std::ldexp(1.0, -33);
    const double v = 2 * 3.14159265358979323846 * (y * std::ldexp(1.0, -32) + std::ldexp(1.0, -33));
    const double exact = std::sqrt(-2 * std::log(u)) * std::sin(v);
    const float ours = PhiloxRandn::box_muller_first(x, y);
    EXPECT_NEAR(ours, exact, 3e-7 * std::sqrt(-2 * std::log(u)) + 2e-7 * std::fabs(exact))
        << std::hex << x << " " << y;
  }
  // u is never 0 or 1 and v never reaches 2π: finite for every input.
  EXPECT_TRUE(std::isfinite(PhiloxRandn::box_muller_first(0, 0)));
  EXPECT_TRUE(std::isfinite(PhiloxRandn::box_muller_first(0xffffffff, 0xffffffff)));
}

// Element i of a first draw is Philox at counter (0, 0, i, 0), key (seed lo, seed hi); the second
// draw of the generator uses counter (1, 0, i, 0).
TEST(Rng, PhiloxCounterLayout) {
  const uint64_t seed = 0x123456789abcdefULL;
  PhiloxRandn g(seed);
  const std::vector<float> a = g.randn(10), b = g.randn(10);
  const std::array<uint32_t, 2> key = {0x89abcdefu, 0x01234567u};
  for (uint32_t i = 0; i < 10; ++i) {
    auto r0 = PhiloxRandn::philox4x32_10({0, 0, i, 0}, key);
    auto r1 = PhiloxRandn::philox4x32_10({1, 0, i, 0}, key);
    EXPECT_EQ(a[i], PhiloxRandn::box_muller_first(r0[0], r0[1])) << i;
    EXPECT_EQ(b[i], PhiloxRandn::box_muller_first(r1[0], r1[1])) << i;
  }
  // a draw's values do not depend on its length (element i is thread i)
  PhiloxRandn h(seed);
  EXPECT_EQ(std::vector<float>(a.begin(), a.begin() + 3), h.randn(3));
}

// Published outputs of torch.randn on CUDA (printed to 4 decimals):
//  - pytorch/pytorch issue #158398 (2025-07): torch.randn([1, 64, 2048],
//    generator=torch.Generator(device='cuda').manual_seed(42), device='cuda'), rows 0-2 (first and
//    last three of each; both of the reporter's machines agree there);
//  - pytorch/pytorch issue #143086 (2024-12, A100 and H100 alike): manual_seed(1);
//    torch.randn(1, 49*12*112*144, device='cuda'), first three;
// and A1111's docstring of modules/rng_philox.py (AUTOMATIC1111/stable-diffusion-webui):
// Generator(seed=0).randn(shape=(3, 4)), 8 decimals of its numpy re-implementation, which forms u
// and v in float64 (curand: float), hence 1e-6.
TEST(Rng, PhiloxMatchesPublishedTorchCudaValues) {
  {
    PhiloxRandn g(42);
    const std::vector<float> v = g.randn(64 * 2048);
    const std::pair<int, float> ref[] = {
        {0, 0.1940f},     {1, 2.1614f},     {2, -0.1721f},    {2045, 1.4540f},  {2046, -2.7733f},
        {2047, -0.8932f}, {2048, -0.4574f}, {2049, 0.8063f},  {2050, 0.1580f},  {4093, 0.1124f},
        {4094, 0.2769f},  {4095, -1.2535f}, {4096, 1.1346f},  {4097, -0.6329f}, {4098, -0.9147f}};
    for (auto [i, r] : ref) EXPECT_NEAR(v[i], r, 5.01e-5f) << "seed 42 element " << i;
  }
  {
    PhiloxRandn g(1);
    const std::vector<float> v = g.randn(3);
    const float ref[] = {-0.2963f, 2.6764f, -0.1408f};
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(v[i], ref[i], 5.01e-5f) << "seed 1 element " << i;
  }
  {
    PhiloxRandn g(0);
    const std::vector<float> v = g.randn(12);
    const float ref[] = {-0.92466259f, -0.42534415f, -2.6438457f, 0.14518388f,  -0.12086647f, -0.57972564f,
                         -0.62285122f, -0.32838709f, -1.07454231f, -0.36314407f, -1.67105067f, 2.26550497f};
    for (int i = 0; i < 12; ++i) EXPECT_NEAR(v[i], ref[i], 1e-6f) << "seed 0 element " << i;
  }
}

// Bit-equality with torch.randn on CUDA, against values recorded on a GPU by
// tests/reference/make_philox_golden.py (tests/data/golden/philox.safetensors). Until that file has
// been made and committed, bit-equality is unverified and this test says so by skipping.
TEST(Rng, PhiloxMatchesCudaGoldenWhenPresent) {
  const std::string path = std::string(SDGEN_TEST_DATA) + "/golden/philox.safetensors";
  if (!std::ifstream(path).good())
    GTEST_SKIP() << path << " is absent: bit-equality of --rng philox with torch.randn on CUDA is "
                 << "unverified; run tests/reference/make_philox_golden.py once on a GPU machine and commit it";
  auto f = SafetensorsFile::open(path);
  std::map<std::string, std::vector<const StTensorInfo*>> sequences;
  int checked = 0;
  std::map<int64_t, int> ulp_histogram;
  auto check = [&](PhiloxRandn& r, const StTensorInfo& t) {
    std::vector<float> ref = f->to_floats(t);
    std::vector<float> ours = r.randn(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      int32_t a, b;
      std::memcpy(&a, &ours[i], 4);
      std::memcpy(&b, &ref[i], 4);
      ulp_histogram[(a < 0) == (b < 0) ? std::min<int64_t>(std::llabs((int64_t)a - b), 99) : 99]++;
      EXPECT_EQ(ours[i], ref[i]) << t.name << "[" << i << "]";
    }
    ++checked;
  };
  for (const StTensorInfo& t : f->tensors()) {
    if (t.name.rfind("seq_", 0) == 0) {
      sequences[t.name.substr(0, 5)].push_back(&t);
      continue;
    }
    PhiloxRandn r(std::stoull(t.name.substr(4, t.name.find('_') - 4)));
    check(r, t);
  }
  for (auto& [name, calls] : sequences) {
    std::sort(calls.begin(), calls.end(), [](auto* a, auto* b) { return a->name < b->name; });
    const std::string& first = calls[0]->name;
    size_t s = first.find("_seed") + 5;
    PhiloxRandn r(std::stoull(first.substr(s, first.find('_', s) - s)));
    for (const StTensorInfo* t : calls) check(r, *t);
  }
  EXPECT_GE(checked, 30);
  std::printf("philox goldens: %d tensors; ulp histogram:", checked);
  for (auto [u, n] : ulp_histogram) std::printf(" %lld:%d", (long long)u, n);
  std::printf("\n");
}

// LatentNoise: the draws diffusers' randn_tensor makes.
TEST(Rng, LatentNoiseBatchModeIsOneDrawOfOneGenerator) {
  const size_t n = 4 * 5 * 7;  // per image, not a multiple of 16
  for (RngKind kind : {RngKind::TorchCpu, RngKind::Philox}) {
    LatentNoise noise(kind, SeedMode::Batch, 1234, 3);
    const std::vector<float> first = noise.draw(n), second = noise.draw(n);
    ASSERT_EQ(first.size(), 3 * n);
    if (kind == RngKind::TorchCpu) {
      TorchCpuRandn r(1234);
      EXPECT_EQ(first, r.randn(3 * n));
      EXPECT_EQ(second, r.randn(3 * n));  // the stream continues
    } else {
      PhiloxRandn r(1234);
      EXPECT_EQ(first, r.randn(3 * n));  // philox, batch of 3 = the first draw of 3n values
      EXPECT_EQ(second, r.randn(3 * n));
    }
    for (int i = 0; i < 3; ++i) EXPECT_EQ(noise.image_seed(i), 1234u);
  }
}

TEST(Rng, LatentNoisePerImageModeIsOneGeneratorPerImage) {
  const size_t n = 4 * 8 * 8;
  for (RngKind kind : {RngKind::TorchCpu, RngKind::Philox}) {
    LatentNoise noise(kind, SeedMode::PerImage, 77, 3);
    const std::vector<float> first = noise.draw(n), second = noise.draw(n);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(noise.image_seed(i), 77u + i);
      // image i alone, as a batch of one with seed 77+i
      LatentNoise alone(kind, SeedMode::Batch, 77 + i, 1);
      const std::vector<float> a1 = alone.draw(n), a2 = alone.draw(n);
      EXPECT_TRUE(std::equal(a1.begin(), a1.end(), first.begin() + i * n)) << "image " << i;
      EXPECT_TRUE(std::equal(a2.begin(), a2.end(), second.begin() + i * n)) << "image " << i;
    }
  }
  // a batch of one is the same in both modes
  EXPECT_EQ(LatentNoise(RngKind::Philox, SeedMode::PerImage, 5, 1).draw(n),
            LatentNoise(RngKind::Philox, SeedMode::Batch, 5, 1).draw(n));
  EXPECT_THROW(LatentNoise(RngKind::TorchCpu, SeedMode::Batch, 5, 0), std::exception);
}

TEST(Rng, RngAndSeedModeNames) {
  RngKind k;
  SeedMode m;
  EXPECT_TRUE(parse_rng_kind("torch-cpu", &k) && k == RngKind::TorchCpu);
  EXPECT_TRUE(parse_rng_kind("philox", &k) && k == RngKind::Philox);
  EXPECT_FALSE(parse_rng_kind("cuda", &k));
  EXPECT_TRUE(parse_seed_mode("batch", &m) && m == SeedMode::Batch);
  EXPECT_TRUE(parse_seed_mode("per-image", &m) && m == SeedMode::PerImage);
  EXPECT_FALSE(parse_seed_mode("perimage", &m));
  EXPECT_STREQ(rng_kind_name(RngKind::Philox), "philox");
  EXPECT_STREQ(seed_mode_name(SeedMode::PerImage), "per-image");
}
