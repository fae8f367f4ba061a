// A linear form over one unit's inputs v = (x, ε, s_0 … s_{K−1}, z) (sampler.h), in double: the
// samplers write diffusers' formulas with these (x0 = (x − σ·ε)/α, multistep differences, the
// update) and the composition becomes one row of the plan's table.
#pragma once
#include <cmath>
#include <utility>
#include <vector>

#include "sampler/sampler.h"

namespace sdgen::sampling {

struct Lin {
  static constexpr int kCols = 3 + SamplerPlan::kMaxState;  // x, ε, s_0..s_3, z
  double c[kCols] = {};
  static Lin col(int i) {
    Lin l;
    l.c[i] = 1;
    return l;
  }
  Lin operator+(const Lin& o) const {
    Lin r = *this;
    for (int i = 0; i < kCols; ++i) r.c[i] += o.c[i];
    return r;
  }
  Lin operator-(const Lin& o) const { return *this + o * -1.0; }
  Lin operator*(double k) const {
    Lin r = *this;
    for (double& v : r.c) v *= k;
    return r;
  }
  Lin operator/(double k) const { return *this * (1.0 / k); }
  friend Lin operator*(double k, const Lin& l) { return l * k; }
};

inline const Lin X = Lin::col(0), E = Lin::col(1), Z = Lin::col(2 + SamplerPlan::kMaxState);
inline Lin S(int k) { return Lin::col(2 + k); }

// Appends units to a plan with K state buffers; a state buffer not given keeps its value.
class PlanBuilder {
 public:
  PlanBuilder(SamplerPlan& plan, int state) : p_(plan) { p_.state = state; }
  void unit(double timestep, float divisor, const Lin& x, std::vector<std::pair<int, Lin>> state = {},
            bool noise = false) {
    const int u = p_.units++;
    p_.renoise.insert(p_.renoise.end(), {1.0f, 0.0f});  // the sampler sets it (renoise_after)
    p_.denoised.insert(p_.denoised.end(), {NAN, NAN});  // and this (denoised)
    p_.timesteps.push_back((float)timestep);
    p_.in_divisor.push_back(divisor);
    p_.draws_noise.push_back(noise);
    p_.table.resize((size_t)p_.units * p_.row_width(), 0.0f);
    std::vector<Lin> rows{x};
    for (int k = 0; k < p_.state; ++k) rows.push_back(S(k));
    for (auto& [k, l] : state) rows[(size_t)1 + k] = l;
    for (int r = 0; r <= p_.state; ++r) {
      for (int j = 0; j < 2 + p_.state; ++j) p_.at(u, r, j) = (float)rows[(size_t)r].c[j];
      p_.at(u, r, 2 + p_.state) = (float)rows[(size_t)r].c[Lin::kCols - 1];
    }
  }
  // The last unit's denoised estimate (SamplerPlan::denoised): a form over x and ε only.
  void denoised(const Lin& x0) {
    p_.denoised[2 * (size_t)(p_.units - 1)] = (float)x0.c[0];
    p_.denoised[2 * (size_t)(p_.units - 1) + 1] = (float)x0.c[1];
  }
  // The last unit's add_noise mix for inpainting (SamplerPlan::renoise).
  void renoise_after(float x0, float noise) {
    p_.renoise[2 * (size_t)(p_.units - 1)] = x0;
    p_.renoise[2 * (size_t)(p_.units - 1) + 1] = noise;
  }

 private:
  SamplerPlan& p_;
};

// σ → the UNet input's divisor √(σ² + 1), in float32 as torch computes it.
inline float input_divisor(float sigma) { return std::sqrt(sigma * sigma + 1.0f); }

// The UNet's output as the ε the samplers' formulas are written in. An epsilon model predicts it;
// a v-prediction model (diffusers' prediction_type "v_prediction": SD 2.x 768-v and its kin)
// predicts v = α·ε − σ·x0 of the sample x_t = α·x0 + σ·ε, whence ε = α·v + σ·x_t, linear in the
// unit's columns like everything else. `x_t` is that sample as a form of the unit's latents.
inline Lin model_eps(bool v_prediction, double alpha, double sigma, const Lin& x_t) {
  return v_prediction ? alpha * E + sigma * x_t : E;
}
// ... for the ᾱ-space samplers (DDIM, PNDM), whose latents are x_t at ᾱ = alpha_cumprod.
inline Lin vp_eps(bool v_prediction, double alpha_cumprod) {
  return model_eps(v_prediction, std::sqrt(alpha_cumprod), std::sqrt(1 - alpha_cumprod), X);
}
// ... for the σ-space samplers, whose latents are x_t·√(σ² + 1): α = 1/√(σ² + 1), σ_t = σ·α.
inline Lin k_eps(bool v_prediction, double sigma) {
  const double alpha = 1 / std::sqrt(sigma * sigma + 1);
  return model_eps(v_prediction, alpha, sigma * alpha, X * alpha);
}
// Whether the model's scheduler config asks for v-prediction.
inline bool v_prediction(const SchedulerConfig& cfg) { return cfg.prediction_type == "v_prediction"; }

}  // namespace sdgen::sampling
