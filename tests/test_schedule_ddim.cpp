// The noise schedule, DDIM timesteps and DDIM steps against diffusers (tests/data/golden/
// schedule.json, made by tests/reference/make_schedule_golden.py).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sampler/ddim.h"
#include "sampler/schedule.h"

using namespace sdgen;

namespace {
nlohmann::json load_schedule() {
  std::ifstream f(std::string(SDGEN_TEST_DATA) + "/golden/schedule.json");
  EXPECT_TRUE(f.good());
  return nlohmann::json::parse(f);
}
float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
std::vector<float> floats(const nlohmann::json& bits) {
  std::vector<float> v;
  for (auto& b : bits) v.push_back(from_bits(b.get<uint32_t>()));
  return v;
}
}  // namespace

TEST(Schedule, AlphasCumprodBitExactToDiffusers) {
  auto g = load_schedule();
  std::vector<float> ours = sd_alphas_cumprod(SchedulerConfig{});
  std::vector<float> ref = floats(g["alphas_cumprod_bits"]);
  ASSERT_EQ(ours.size(), ref.size());
  int mismatches = 0;
  for (size_t i = 0; i < ref.size(); ++i) mismatches += ours[i] != ref[i];
  EXPECT_EQ(mismatches, 0);
  // DESIGN.md: ᾱ[0] = 0.99915, ᾱ[999] ≈ 0.0046601.
  EXPECT_NEAR(ours[0], 0.99915f, 1e-7);
  EXPECT_NEAR(ours[999], 0.0046601f, 1e-7);
}

TEST(Ddim, LeadingTimestepsMatchDiffusers) {
  auto g = load_schedule();
  for (auto& [n, ts] : g["timesteps"].items()) {
    DdimSampler s(SchedulerConfig{}, std::stoi(n));
    EXPECT_EQ(s.timesteps(), ts.get<std::vector<int>>()) << n << " steps";
  }
  DdimSampler s25(SchedulerConfig{}, 25);
  EXPECT_EQ(s25.timesteps().front(), 961);
  EXPECT_EQ(s25.timesteps().back(), 1);
}

TEST(Ddim, StepMatchesDiffusers) {
  auto g = load_schedule();
  ASSERT_FALSE(g["steps"].empty());
  for (auto& st : g["steps"]) {
    DdimSampler s(SchedulerConfig{}, st["steps"].get<int>());
    const int i = st["index"].get<int>();
    ASSERT_EQ(s.timesteps()[i], st["t"].get<int>());
    std::vector<float> x = floats(st["x_bits"]);
    std::vector<float> eps = floats(st["eps_bits"]);
    std::vector<float> ref = floats(st["out_bits"]);
    s.step(i, eps.data(), x.data(), x.size());
    for (size_t k = 0; k < x.size(); ++k)
      EXPECT_NEAR(x[k], ref[k], 2e-6f * std::max(1.0f, std::fabs(ref[k])))
          << "steps " << st["steps"] << " index " << i << " element " << k;
  }
}

TEST(Ddim, RejectsImpossibleStepCounts) {
  EXPECT_THROW(DdimSampler(SchedulerConfig{}, 0), std::exception);
  EXPECT_THROW(DdimSampler(SchedulerConfig{}, 1000), std::exception);  // t would reach 1000
}
