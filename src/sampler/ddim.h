// DDIM (η = 0) with "leading" timestep spacing, as diffusers' DDIMScheduler with the SD v1.5
// configuration: t = arange(n)·(T // n) reversed + steps_offset → 961, 921, …, 1 for 25 steps.
//   x0 = (x − √(1−ᾱ_t)·ε) / √ᾱ_t ;  x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε
// with ᾱ_prev = ᾱ[t − T//n], or ᾱ[0] (set_alpha_to_one=false) / 1 (true) before the start.
// Every operation is float32 in diffusers' order, so the latents follow diffusers to rounding.
#pragma once
#include <vector>

#include "sdgen/config.h"

namespace sdgen {

// x_prev from x and ε with one step's coefficients c (DdimSampler::coefficients), in diffusers'
// float32 order. This host sampler is the float32 reference of diffusers' DDIMScheduler that the
// tests hold to it; the pipeline runs DDIM as every sampler, through its plan (plan_ddim).
inline float ddim_update(float x, float eps, const float* c) {
  const float x0 = (x - c[0] * eps) / c[1];
  return c[2] * x0 + c[3] * eps;
}

class DdimSampler {
 public:
  DdimSampler(const SchedulerConfig& cfg, int steps);
  const std::vector<int>& timesteps() const { return timesteps_; }
  // One step in place on host floats: x (the latents) ← x_prev, given ε for timestep index i.
  void step(int i, const float* eps, float* x, size_t n) const;
  // Per step i, the four float32 coefficients of ddim_update: √(1−ᾱ_t), √ᾱ_t, √ᾱ_prev, √(1−ᾱ_prev);
  // [steps × 4].
  std::vector<float> coefficients() const;

 private:
  std::vector<float> alphas_cumprod_;
  std::vector<int> timesteps_;
  int step_ratio_;
  float final_alpha_cumprod_;
};

}  // namespace sdgen
