// What the sampler tests share (test_samplers.cpp, test_v_prediction.cpp): a golden file of the
// reference scripts with its runs list, and a plan run with the scripts' stand-in UNet through the
// op the pipeline runs, held to the scheduler's latents after every unit.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "sdgen/ops.h"
#include "sdgen/tensor.h"

namespace sampler_goldens {

using namespace sdgen;

// tests/data/golden/<name> and the JSON list in its metadata under `runs_key`.
struct Golden {
  std::unique_ptr<SafetensorsFile> f;
  nlohmann::json runs;
  explicit Golden(const std::string& name, const std::string& runs_key = "runs") {
    f = SafetensorsFile::open(std::string(SDGEN_TEST_DATA) + "/golden/" + name);
    runs = nlohmann::json::parse(f->metadata().at(runs_key));
  }
  std::vector<float> floats(const std::string& key) const {
    const StTensorInfo* t = f->find(key);
    if (!t) throw std::runtime_error("golden tensor " + key + " missing");
    return f->to_floats(*t);
  }
};

inline float max_abs(const std::vector<float>& v, size_t from, size_t n) {
  float m = 0;
  for (size_t i = from; i < from + n; ++i) m = std::max(m, std::fabs(v[i]));
  return m;
}

// The stand-in UNet of the reference scripts, in float32 as torch computes it (its output is ε,
// or v for a v-prediction plan).
inline float fake_unet(float x_in, float t) { return 0.9f * x_in + 0.1f * std::sin(x_in + t / 100.0f); }

// Timesteps: integer schedules must agree exactly; the fractional ones (Karras sigmas mapped back,
// DPM2's midpoints) go through logs and interpolation that numpy does in float32 and float64 and we
// in double: 2e-3 of a timestep is far below what moves the UNet (the embedding's fastest frequency
// is 1 per unit) and far above the ~1e-4 seen.
constexpr double kTimestepTol = 2e-3;
// The plans' coefficients are composed in double and rounded to float once; diffusers rounds each
// float32 operation. Over 25 units of the stand-in model (Lipschitz ~1) the latents agree to a few
// float ulps of their largest value (measured: ≤ 3e-6 relative); 2e-5 of max(1, max|ref|) keeps a
// margin and fails on any wrong coefficient (those move the latents at the 1e-2 level).
constexpr float kPlanLatentRel = 2e-5f;

// The tiny model's latents through a few steps of fp32 UNet calls: both sides compute the same
// float32 expressions up to summation order and float rounding of the plans' coefficients
// (measured ≤ 7e-6 of max(1, max|ref|) after any unit); 2e-5 keeps a margin and fails on any wrong
// coefficient, timestep or noise draw (those move the latents at the 1e-2 level).
constexpr float kPipeLatentRel = 2e-5f;

// A reference script's pipeline call (its "call" metadata: prompt, steps, size, seed, ...) with a
// sampler.
inline GenerateParams call_params(const nlohmann::json& call, const std::string& sampler, const std::string& schedule,
                                  float eta = 0.0f) {
  GenerateParams p;
  p.prompt = call["prompt"];
  p.negative_prompt = call["negative_prompt"];
  p.steps = call["steps"];
  p.guidance = call["guidance"];
  p.width = call["width"];
  p.height = call["height"];
  p.batch = call["images"];
  p.seed = call["seed"];
  p.sampler = parse_sampler_options(sampler, schedule, eta);
  return p;
}

// Called before each unit's update with the unit, its latents and the stand-in's output.
using UnitHook = std::function<void(int unit, const std::vector<float>& x, const std::vector<float>& out)>;

// Runs a plan from the initial latents x (NCHW [2,4,2,2]) with the stand-in UNet and the op the
// pipeline runs (the CPU backend's sampler_step), the stochastic units drawing from rng, and holds
// the latents after every unit to ref. Returns the worst error relative to max(1, max|ref|).
inline float check_trajectory(const SamplerPlan& plan, const std::vector<float>& x_init, TorchCpuRandn& rng,
                              const std::vector<float>& ref, const UnitHook& hook = nullptr) {
  const int n = 2 * 4 * 2 * 2;
  Tensor x = Tensor::from_floats({2, 4, 2, 2}, x_init);
  Tensor state = plan.state ? Tensor::from_floats({plan.state, 2, 4, 2, 2}, std::vector<float>(plan.state * n, 0.0f))
                            : Tensor();
  std::vector<float> z;
  for (int u = 0; u < plan.units; ++u) {
    std::vector<float> d = plan.draws_noise[u] ? rng.randn(n) : std::vector<float>(n, 0.0f);
    z.insert(z.end(), d.begin(), d.end());
  }
  const Tensor noise = plan.stochastic() ? Tensor::from_floats({plan.units, 2, 4, 2, 2}, z) : Tensor();
  const Tensor table = Tensor::from_floats({plan.units, plan.row_width()}, plan.table);
  Tensor step = Tensor::from_floats({1}, {0.0f});
  EXPECT_EQ(ref.size(), (size_t)plan.units * n);
  if (ref.size() != (size_t)plan.units * n) return INFINITY;
  float worst_rel = 0;
  for (int u = 0; u < plan.units; ++u) {
    std::vector<float> xv = x.to_floats(), e(n);
    for (int i = 0; i < n; ++i) e[i] = fake_unet(xv[i] / plan.in_divisor[u], plan.timesteps[u]);
    if (hook) hook(u, xv, e);
    ops::sampler_step(x, state, Tensor::from_floats({2, 4, 2, 2}, e), table, noise, step, 7.5f);
    xv = x.to_floats();
    float worst = 0;
    for (int i = 0; i < n; ++i) worst = std::max(worst, std::fabs(xv[i] - ref[(size_t)u * n + i]));
    const float scale = std::max(1.0f, max_abs(ref, (size_t)u * n, n));
    EXPECT_LE(worst, kPlanLatentRel * scale) << "unit " << u;
    if (worst > kPlanLatentRel * scale) return worst / scale;
    worst_rel = std::max(worst_rel, worst / scale);
  }
  return worst_rel;
}

}  // namespace sampler_goldens
