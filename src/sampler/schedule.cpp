#include "sampler/schedule.h"

#include <cmath>

#include "sdgen/error.h"

namespace sdgen {

std::vector<float> sd_betas(const SchedulerConfig& cfg) {
  const int n = cfg.train_timesteps;
  std::vector<float> betas(n);
  if (cfg.beta_schedule == "scaled_linear") {
    const float start = (float)std::sqrt(cfg.beta_start);
    const float end = (float)std::sqrt(cfg.beta_end);
    const float step = (end - start) / (float)(n - 1);
    const int halfway = n / 2;
    for (int i = 0; i < n; ++i) {
      float v = i < halfway ? std::fma(step, (float)i, start) : std::fma(-step, (float)(n - 1 - i), end);
      betas[i] = v * v;
    }
  } else if (cfg.beta_schedule == "linear") {
    const float start = (float)cfg.beta_start, end = (float)cfg.beta_end;
    const float step = (end - start) / (float)(n - 1);
    const int halfway = n / 2;
    for (int i = 0; i < n; ++i)
      betas[i] = i < halfway ? std::fma(step, (float)i, start) : std::fma(-step, (float)(n - 1 - i), end);
  } else {
    throw_model("unsupported beta_schedule '" + cfg.beta_schedule + "' (scaled_linear, linear)");
  }
  return betas;
}

namespace {
// diffusers' rescale_zero_terminal_snr, in float32 as torch runs it: √ᾱ shifted so that its last
// value is 0 and scaled so that its first is unchanged; the betas from the new ᾱ (the last one 1).
void rescale_zero_terminal_snr(std::vector<float>& betas) {
  std::vector<float> s(betas.size());
  float acc = 1.0f;
  for (size_t i = 0; i < betas.size(); ++i) {
    acc *= 1.0f - betas[i];
    s[i] = std::sqrt(acc);
  }
  const float s0 = s.front(), sT = s.back(), k = s0 / (s0 - sT);
  for (float& v : s) v = (v - sT) * k;
  float prev = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const float ab = s[i] * s[i];
    betas[i] = 1.0f - (i == 0 ? ab : ab / prev);
    prev = ab;
  }
}
}  // namespace

std::vector<float> sd_alphas_cumprod(const SchedulerConfig& cfg) {
  std::vector<float> betas = sd_betas(cfg);
  if (cfg.rescale_betas_zero_snr) rescale_zero_terminal_snr(betas);
  std::vector<float> ac(betas.size());
  double acc = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) {
    acc *= (double)(1.0f - betas[i]);
    ac[i] = (float)acc;
  }
  return ac;
}

}  // namespace sdgen
