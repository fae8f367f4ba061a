// Timestep and sigma schedules as diffusers' set_timesteps computes them. diffusers builds them
// with numpy in float64 and casts to float32 at the end; the helpers here repeat numpy's own
// arithmetic (linspace as i·step + start with the exact end point, arange with a float step as
// start + i·((start + step) − start), round half to even) so that integer timesteps come out
// identical and fractional ones to float64 rounding. Checked against diffusers' tables for every
// sampler, spacing and schedule in tests/test_samplers.cpp.
#include <algorithm>
#include <cfenv>
#include <cmath>

#include "sampler/sampler.h"
#include "sampler/schedule.h"
#include "sdgen/error.h"

namespace sdgen::schedule {

namespace {
// numpy.linspace(start, stop, n) in float64.
std::vector<double> np_linspace(double start, double stop, int n) {
  std::vector<double> y((size_t)n);
  if (n == 1) return {start};
  const double step = (stop - start) / (double)(n - 1);
  for (int i = 0; i < n; ++i) y[(size_t)i] = (double)i * step + start;
  y[(size_t)n - 1] = stop;
  return y;
}
// numpy.arange(start, stop, step) for a float step.
std::vector<double> np_arange(double start, double stop, double step) {
  const double len = std::ceil((stop - start) / step);
  std::vector<double> y;
  if (!(len > 0)) return y;
  const size_t n = (size_t)len;
  y.push_back(start);
  if (n > 1) y.push_back(start + step);
  const double delta = n > 1 ? y[1] - y[0] : step;
  for (size_t i = 2; i < n; ++i) y.push_back(start + (double)i * delta);
  return y;
}
double np_round(double v) { return std::nearbyint(v); }  // half to even in the default rounding mode
}  // namespace

std::string spacing(const SchedulerConfig& cfg, const char* class_default) {
  return cfg.timestep_spacing.empty() ? std::string(class_default) : cfg.timestep_spacing;
}

std::vector<double> discrete_timesteps(const SchedulerConfig& cfg, const std::string& sp, int n) {
  const int T = cfg.train_timesteps;
  std::vector<double> t;
  if (sp == "linspace") {
    for (double v : np_linspace(0, T - 1, n)) t.push_back((float)v);  // dtype=float32
    std::reverse(t.begin(), t.end());
  } else if (sp == "leading") {
    const int ratio = T / n;
    for (int i = n - 1; i >= 0; --i) t.push_back((double)(i * ratio) + cfg.steps_offset);
  } else if (sp == "trailing") {
    for (double v : np_arange(T, 0, -(double)T / n)) t.push_back(np_round(v) - 1);
  } else {
    throw_model("timestep_spacing '" + sp + "' is not linspace, leading or trailing");
  }
  return t;
}

std::vector<float> train_sigmas(const SchedulerConfig& cfg) {
  std::vector<float> ac = sd_alphas_cumprod(cfg), s(ac.size());
  // A zero-terminal-SNR schedule ends at ᾱ = 0, an infinite σ. The sigma samplers of diffusers that
  // take rescale_betas_zero_snr (Euler, Euler a, DPM-Solver++, UniPC) put 2⁻²⁴ there instead, fp16's
  // smallest subnormal: σ_max ≈ 4096.
  if (cfg.rescale_betas_zero_snr) ac.back() = 0x1p-24f;
  for (size_t i = 0; i < ac.size(); ++i) s[i] = std::sqrt((1.0f - ac[i]) / ac[i]);
  return s;
}

double interp(double t, const std::vector<float>& sigmas) {
  const int n = (int)sigmas.size();
  if (t <= 0) return sigmas[0];
  if (t >= n - 1) return sigmas[(size_t)n - 1];
  const int j = (int)std::floor(t);
  if ((double)j == t) return sigmas[(size_t)j];
  const double slope = ((double)sigmas[(size_t)j + 1] - (double)sigmas[(size_t)j]);  // xp step is 1
  return slope * (t - j) + (double)sigmas[(size_t)j];
}

std::vector<float> log_sigmas(const std::vector<float>& sigmas) {
  std::vector<float> l(sigmas.size());
  for (size_t i = 0; i < sigmas.size(); ++i) l[i] = std::log(sigmas[i]);
  return l;
}

double sigma_to_t(double sigma, const std::vector<float>& ls) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  // The last index whose log σ is ≤ log_sigma (argmax of the cumulative count; 0 when none),
  // kept below the end so that low + 1 exists.
  int low = 0;
  for (int i = 0; i < (int)ls.size(); ++i)
    if (log_sigma - (double)ls[(size_t)i] >= 0) low = i;
  low = std::min(low, (int)ls.size() - 2);
  const double lo = ls[(size_t)low], hi = ls[(size_t)low + 1];
  const double w = std::clamp((lo - log_sigma) / (lo - hi), 0.0, 1.0);
  return (1 - w) * low + w * (low + 1);
}

std::vector<double> karras(double sigma_min, double sigma_max, int n) {
  const double rho = 7.0;
  const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
  std::vector<double> s;
  for (double r : np_linspace(0, 1, n)) s.push_back(std::pow(max_inv + r * (min_inv - max_inv), rho));
  return s;
}

}  // namespace sdgen::schedule
