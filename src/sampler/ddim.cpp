#include "sampler/ddim.h"

#include <cmath>

#include "sampler/schedule.h"
#include "sdgen/error.h"

namespace sdgen {

DdimSampler::DdimSampler(const SchedulerConfig& cfg, int steps) {
  if (steps < 1 || steps > cfg.train_timesteps)
    throw_usage("steps must be between 1 and " + std::to_string(cfg.train_timesteps));
  alphas_cumprod_ = sd_alphas_cumprod(cfg);
  step_ratio_ = cfg.train_timesteps / steps;
  for (int i = steps - 1; i >= 0; --i) timesteps_.push_back(i * step_ratio_ + cfg.steps_offset);
  if (timesteps_.front() >= cfg.train_timesteps)
    throw_usage("steps=" + std::to_string(steps) + " is too many for DDIM with steps_offset " +
                std::to_string(cfg.steps_offset) + " (at most " + std::to_string(cfg.train_timesteps / 2) + ")");
  final_alpha_cumprod_ = cfg.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
}

std::vector<float> DdimSampler::coefficients() const {
  std::vector<float> c;
  for (size_t i = 0; i < timesteps_.size(); ++i) {
    const int t = timesteps_[i];
    const int prev = t - step_ratio_;
    const float a_t = alphas_cumprod_[t];
    const float a_prev = prev >= 0 ? alphas_cumprod_[prev] : final_alpha_cumprod_;
    const float beta_t = 1.0f - a_t;
    c.push_back(std::sqrt(beta_t));
    c.push_back(std::sqrt(a_t));
    c.push_back(std::sqrt(a_prev));
    c.push_back(std::sqrt(1.0f - a_prev - 0.0f));  // η = 0: no variance term
  }
  return c;
}

void DdimSampler::step(int i, const float* eps, float* x, size_t n) const {
  const std::vector<float> all = coefficients();
  const float* c = &all[(size_t)i * 4];
  for (size_t k = 0; k < n; ++k) x[k] = ddim_update(x[k], eps[k], c);
}

}  // namespace sdgen
