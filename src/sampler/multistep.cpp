// The alpha-space samplers of diffusers (DDIM with η, PNDM's PLMS, DPM-Solver++ 2M and its SDE
// variant, UniPC): latents unscaled (init_noise_sigma 1), the UNet fed x itself, x0 predicted
// as (x − √(1−ᾱ)·ε)/√ᾱ. With σ = √((1−ᾱ)/ᾱ): α_t = 1/√(σ²+1), σ_t = σ·α_t, λ = log(α_t/σ_t) = −log σ.
#include <algorithm>
#include <cmath>

#include "sampler/k_samplers.h"
#include "sampler/linear_form.h"
#include "sampler/schedule.h"
#include "sdgen/error.h"

namespace sdgen::sampling {

namespace {
using namespace schedule;

double np_round(double v) { return std::nearbyint(v); }

// DDIM/PNDM integer timesteps, descending (DDIM) or ascending (PNDM's _timesteps: asc = true).
std::vector<int> alpha_timesteps(const SchedulerConfig& cfg, const std::string& sp, int n, bool asc) {
  const int T = cfg.train_timesteps;
  std::vector<int> t;
  if (sp == "linspace") {
    const double step = n > 1 ? (double)(T - 1) / (n - 1) : 0;
    for (int i = 0; i < n; ++i) t.push_back((int)np_round(i == n - 1 && n > 1 ? T - 1 : i * step));
  } else if (sp == "leading") {
    for (int i = 0; i < n; ++i) t.push_back(i * (T / n) + cfg.steps_offset);
  } else {  // trailing: round(arange(T, 0, -T/n)) - 1, ascending
    std::vector<double> d = discrete_timesteps(cfg, "trailing", n);
    for (double v : d) t.push_back((int)v);
    std::reverse(t.begin(), t.end());
  }
  if (!asc) std::reverse(t.begin(), t.end());
  return t;
}

void check_timesteps(const std::vector<int>& t, const SchedulerConfig& cfg, const char* who) {
  for (int v : t)
    if (v < 0 || v >= cfg.train_timesteps)
      throw_usage(std::string(who) + ": this step count puts a timestep at " + std::to_string(v) +
                  ", outside the schedule's 0.." + std::to_string(cfg.train_timesteps - 1) + "; use fewer steps");
}

// DPM-Solver/UniPC timesteps (their set_timesteps: n + 1 points, the last dropped) and sigmas.
struct MultistepSchedule {
  std::vector<int> t;
  std::vector<double> sigma;  // [n + 1], as float32 values, the last 0
};
MultistepSchedule multistep_schedule(const SchedulerConfig& cfg, int n, bool karras) {
  const int T = cfg.train_timesteps;
  const std::string sp = spacing(cfg, "linspace");
  MultistepSchedule m;
  if (sp == "linspace") {
    const double step = (double)(T - 1) / n;  // linspace(0, T-1, n+1)
    for (int i = n; i >= 1; --i) m.t.push_back((int)np_round(i == n ? T - 1 : i * step));
  } else if (sp == "leading") {
    const int ratio = T / (n + 1);
    for (int i = n; i >= 1; --i) m.t.push_back(i * ratio + cfg.steps_offset);
  } else {
    for (double v : discrete_timesteps(cfg, "trailing", n)) m.t.push_back((int)v);
  }
  const std::vector<float> train = train_sigmas(cfg);
  if (karras) {
    const std::vector<float> ls = log_sigmas(train);
    const std::vector<double> k = schedule::karras(train.front(), train.back(), n);
    m.t.clear();
    for (double s : k) {
      m.t.push_back((int)np_round(sigma_to_t(s, ls)));
      m.sigma.push_back((float)s);
    }
  } else {
    for (int t : m.t) m.sigma.push_back(train[(size_t)t]);
  }
  check_timesteps(m.t, cfg, "this sampler");
  m.sigma.push_back(0.0);
  return m;
}

double alpha_of(double sigma) { return 1.0 / std::sqrt(sigma * sigma + 1.0); }
double lambda_of(double sigma) { return sigma > 0 ? -std::log(sigma) : INFINITY; }
// x0 = (x − σ_t·ε)/α_t at σ.
// DPM-Solver's convert_model_output: x0 = (x − σ_t·ε)/α_t (for v: α_t·x − σ_t·v).
Lin x0_at(double sigma, bool v) {
  const double a = alpha_of(sigma), s = sigma * a;
  return (X - s * model_eps(v, a, s, X)) / a;
}

// img2img's start (k_samplers.h): DDIM's and PNDM's add_noise (DDPM's form) at
// timestep t, √ᾱ_t·x0 + √(1 − ᾱ_t)·noise with both factors in float32 as torch forms them.
void set_alpha_start(SamplerPlan& p, const std::vector<float>& ac, int t) {
  p.init_x0 = std::sqrt(ac[(size_t)t]);
  p.init_noise = std::sqrt(1.0f - ac[(size_t)t]);
}
// The same mix after a unit, for inpainting (SamplerPlan::renoise): at the next timestep, or the
// picture itself after the last unit.
void renoise_alpha(PlanBuilder& b, const std::vector<float>& ac, const std::vector<int>& ts, size_t next) {
  if (next < ts.size()) b.renoise_after(std::sqrt(ac[(size_t)ts[next]]), std::sqrt(1.0f - ac[(size_t)ts[next]]));
}
// DPM-Solver's and UniPC's add_noise at σ = sigmas[begin] (float32): α_t·x0 + σ_t·noise with
// α_t = 1/√(σ² + 1), σ_t = σ·α_t.
void set_sigma_start(SamplerPlan& p, double sigma_value) {
  const float sigma = (float)sigma_value;
  p.init_x0 = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  p.init_noise = sigma * p.init_x0;
}
void renoise_sigma(PlanBuilder& b, double sigma_value) {
  const float sigma = (float)sigma_value;
  const float alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  b.renoise_after(alpha, sigma * alpha);
}
}  // namespace

// DDIM with η ≥ 0 (and any spacing): x_prev = √ᾱ_prev·x0 + √(1 − ᾱ_prev − σ²)·ε + σ·z with
// σ = η·√((1−ᾱ_prev)/(1−ᾱ_t)·(1 − ᾱ_t/ᾱ_prev)).
SamplerPlan plan_ddim(const SchedulerConfig& cfg, int n, float eta, int begin) {
  SamplerPlan p;
  const std::vector<float> ac = sd_alphas_cumprod(cfg);
  const std::vector<int> ts = alpha_timesteps(cfg, spacing(cfg, "leading"), n, false);
  check_timesteps(ts, cfg, "ddim");
  const int ratio = cfg.train_timesteps / n;
  const float final_ac = cfg.set_alpha_to_one ? 1.0f : ac[0];
  set_alpha_start(p, ac, ts[(size_t)begin]);
  PlanBuilder b(p, 0);
  for (size_t i = (size_t)begin; i < ts.size(); ++i) {
    const int t = ts[i];
    const int prev = t - ratio;
    const double a_t = ac[(size_t)t], a_p = prev >= 0 ? ac[(size_t)prev] : final_ac;
    const double var = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p);
    const double sd = eta * std::sqrt(var);
    // A v model's x0 and ε straight from v (diffusers' own formulas), without dividing by √ᾱ_t,
    // which is 0 at the last timestep of a zero-terminal-SNR schedule.
    const bool v = v_prediction(cfg);
    if (!v && a_t <= 0)
      throw_usage("ddim: the schedule reaches ᾱ = 0 (rescale_betas_zero_snr) at timestep " + std::to_string(t) +
                  ", where an epsilon model's x0 is undefined; such schedules are for v-prediction models");
    const Lin e = vp_eps(v, a_t);
    const Lin x0 = v ? std::sqrt(a_t) * X - std::sqrt(1 - a_t) * E : (X - std::sqrt(1 - a_t) * e) / std::sqrt(a_t);
    b.unit(t, 1.0f, std::sqrt(a_p) * x0 + std::sqrt(1 - a_p - sd * sd) * e + sd * Z, {}, eta > 0);
    b.denoised(x0);
    renoise_alpha(b, ac, ts, i + 1);
  }
  return p;
}

// PNDM with skip_prk_steps (PLMS, as SD's scheduler config sets it): n + 1 units on timesteps
// t_0, t_1, t_1, t_2, …; the second unit redoes the first step from the kept sample with the mean
// of two outputs, then Adams–Bashforth of orders 2, 3 and 4 over the kept outputs. PNDM has no
// begin index: diffusers' img2img runs it on its timesteps from `begin` on with a fresh counter,
// so the unit after the first redoes a step from t + T//n (as its second unit always does).
SamplerPlan plan_pndm(const SchedulerConfig& cfg, int n, int begin) {
  SamplerPlan p;
  const std::vector<float> ac = sd_alphas_cumprod(cfg);
  const std::vector<int> asc = alpha_timesteps(cfg, spacing(cfg, "leading"), n, true);
  check_timesteps(asc, cfg, "pndm");
  std::vector<int> plms(asc.begin(), asc.end() - 1);
  if (asc.size() >= 2) plms.push_back(asc[asc.size() - 2]);
  plms.push_back(asc.back());
  std::reverse(plms.begin(), plms.end());
  plms.erase(plms.begin(), plms.begin() + begin);
  set_alpha_start(p, ac, plms.front());
  const int ratio = cfg.train_timesteps / n;
  const float final_ac = cfg.set_alpha_to_one ? 1.0f : ac[0];
  // _get_prev_sample: x_prev = √(ᾱ_prev/ᾱ_t)·x − (ᾱ_prev − ᾱ_t)·e / (ᾱ_t·√(1−ᾱ_prev) + √(ᾱ_t(1−ᾱ_t)ᾱ_prev)).
  // PLMS keeps and combines the raw outputs; a v-prediction model's combination becomes ε only
  // here, with this call's sample and ᾱ_t (as diffusers converts it).
  const bool v = v_prediction(cfg);
  auto prev_sample = [&](const Lin& x, int t, int prev, const Lin& out) {
    const double a_t = ac[(size_t)t], a_p = prev >= 0 ? ac[(size_t)prev] : final_ac;
    const double denom = a_t * std::sqrt(1 - a_p) + std::sqrt(a_t * (1 - a_t) * a_p);
    const Lin e = v ? std::sqrt(a_t) * out + std::sqrt(1 - a_t) * x : out;
    return std::sqrt(a_p / a_t) * x - ((a_p - a_t) / denom) * e;
  };
  // PLMS never forms x0; a preview's is the DDPM one of the UNet's input at t.
  auto x0_at_t = [&](int t) {
    const double a = ac[(size_t)t];
    return (X - std::sqrt(1.0 - a) * vp_eps(v, a)) / std::sqrt(a);
  };
  PlanBuilder b(p, 4);  // s0, s1, s2: the kept outputs, newest first; s3: the sample of unit 0
  int kept = 0;         // len(ets) before this unit
  for (int c = 0; c < (int)plms.size(); ++c) {
    const int t = plms[(size_t)c];
    if (c == 1) {  // no new output kept; the first step again from the kept sample
      b.unit(t, 1.0f, prev_sample(S(3), t + ratio, t, (E + S(0)) / 2));
      b.denoised(x0_at_t(t));
      renoise_alpha(b, ac, plms, (size_t)c + 1);
      continue;
    }
    Lin e;
    const int have = std::min(kept, 3) + 1;  // ets[-3:] + the new one
    if (have == 1) e = E;
    else if (have == 2) e = (3 * E - S(0)) / 2;
    else if (have == 3) e = (23 * E - 16 * S(0) + 5 * S(1)) / 12;
    else e = (1.0 / 24) * (55 * E - 59 * S(0) + 37 * S(1) - 9 * S(2));
    std::vector<std::pair<int, Lin>> st{{0, E}, {1, S(0)}, {2, S(1)}};
    if (c == 0) st.push_back({3, X});
    b.unit(t, 1.0f, prev_sample(X, t, t - ratio, e), st);
    b.denoised(x0_at_t(t));
    renoise_alpha(b, ac, plms, (size_t)c + 1);
    kept = have;
  }
  return p;
}

// DPM-Solver++ 2M (midpoint) and its SDE variant, over x0 predictions: first order at the first
// step and the last (final sigma 0), second order between.
SamplerPlan plan_dpmpp_2m(const SchedulerConfig& cfg, int n, bool karras, bool sde, int begin) {
  SamplerPlan p;
  const MultistepSchedule m = multistep_schedule(cfg, n, karras);
  set_sigma_start(p, m.sigma[(size_t)begin]);
  PlanBuilder b(p, 1);  // s0: the previous step's x0
  for (int i = begin; i < n; ++i) {
    const double s_s = m.sigma[i], s_t = m.sigma[i + 1];
    const double a_t = alpha_of(s_t), sig_t = s_t * a_t, sig_s = s_s * alpha_of(s_s);
    const double h = lambda_of(s_t) - lambda_of(s_s);
    const double emh = s_t / s_s;  // e^{−h}
    const Lin m0 = x0_at(s_s, v_prediction(cfg));
    Lin d = m0, d1;
    const bool second = i > begin && i < n - 1;  // lower_order_nums ≥ 1, not the final step
    if (second) {
      const double r0 = (lambda_of(s_s) - lambda_of(m.sigma[i - 1])) / h;
      d1 = (m0 - S(0)) / r0;
    }
    Lin x;
    if (!sde) {
      x = (sig_t / sig_s) * X - (a_t * (emh - 1)) * d;
      if (second) x = x - 0.5 * (a_t * (emh - 1)) * d1;
    } else {
      const double e2 = emh * emh;  // e^{−2h}
      x = (sig_t / sig_s * emh) * X + (a_t * (1 - e2)) * d + (sig_t * std::sqrt(1 - e2)) * Z;
      if (second) x = x + 0.5 * (a_t * (1 - e2)) * d1;
    }
    b.unit(m.t[i], 1.0f, x, {{0, m0}}, sde);
    b.denoised(m0);
    renoise_sigma(b, m.sigma[i + 1]);
  }
  return p;
}

namespace {
// UniPC's B(h)-weighted coefficients (bh2, predicting x0): R and b of its order-`order` system
// for the ratios rks (the last one 1), as multistep_uni_{p,c}_bh_update build them.
void unipc_system(double hh, const std::vector<double>& rks, int order, std::vector<std::vector<double>>& R,
                  std::vector<double>& bv, double& B_h) {
  const double h_phi_1 = std::expm1(hh);
  double h_phi_k = h_phi_1 / hh - 1;
  double factorial = 1;
  B_h = std::expm1(hh);
  R.clear();
  bv.clear();
  for (int i = 1; i <= order; ++i) {
    std::vector<double> row;
    for (double r : rks) row.push_back(std::pow(r, i - 1));
    R.push_back(row);
    bv.push_back(h_phi_k * factorial / B_h);
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - 1 / factorial;
  }
}
}  // namespace

// UniPC (bh2, order 2, x0 prediction): at each step the corrector refines the previous
// predictor's result with the new output, then the predictor steps on; orders warm up 1, 2 and
// fall back to 1 at the last step.
SamplerPlan plan_unipc(const SchedulerConfig& cfg, int n, bool karras, int begin) {
  SamplerPlan p;
  const MultistepSchedule m = multistep_schedule(cfg, n, karras);
  set_sigma_start(p, m.sigma[(size_t)begin]);
  auto lam = [&](int k) { return lambda_of(m.sigma[(size_t)k]); };
  PlanBuilder b(p, 3);  // s0: last_sample, s1: x0 of the previous step, s2: of the one before
  int prev_order = 0;
  for (int i = begin; i < n; ++i) {
    const double s_i = m.sigma[i];
    const Lin mi = x0_at(s_i, v_prediction(cfg));
    Lin xc = X;
    if (i > begin) {  // corrector: from last_sample over σ_{i−1} → σ_i (none before a first output)
      const double a_t = alpha_of(s_i), sig_t = s_i * a_t;
      const double sig_s = m.sigma[i - 1] * alpha_of(m.sigma[i - 1]);
      const double h = lam(i) - lam(i - 1), hh = -h;
      const double h_phi_1 = std::expm1(hh);
      std::vector<double> rks, bv;
      std::vector<std::vector<double>> R;
      Lin corr;
      double rho_last;
      double B_h;
      if (prev_order == 1) {
        unipc_system(hh, {1.0}, 1, R, bv, B_h);
        rho_last = 0.5;
      } else {
        const double rk = (lam(i - 2) - lam(i - 1)) / h;
        unipc_system(hh, {rk, 1.0}, 2, R, bv, B_h);
        // solve [[1, 1], [rk, 1]]·ρ = b
        const double det = R[0][0] * R[1][1] - R[0][1] * R[1][0];
        const double r0 = (bv[0] * R[1][1] - R[0][1] * bv[1]) / det;
        rho_last = (R[0][0] * bv[1] - R[1][0] * bv[0]) / det;
        corr = r0 * ((S(2) - S(1)) / rk);
      }
      xc = (sig_t / sig_s) * S(0) - (a_t * h_phi_1) * S(1) - (a_t * B_h) * (corr + rho_last * (mi - S(1)));
    }
    const int order = std::min({2, n - i, i - begin + 1});
    // predictor: σ_i → σ_{i+1} from the corrected sample
    const double s_t = m.sigma[i + 1];
    const double a_t = alpha_of(s_t), sig_t = s_t * a_t, sig_s = s_i * alpha_of(s_i);
    const double h = lam(i + 1) - lam(i), hh = -h;
    const double h_phi_1 = std::expm1(hh);
    Lin x = (sig_t / sig_s) * xc - (a_t * h_phi_1) * mi;
    if (order == 2) {
      const double rk = (lam(i - 1) - lam(i)) / h;
      x = x - (a_t * std::expm1(hh)) * (0.5 * ((S(1) - mi) / rk));
    }
    b.unit(m.t[i], 1.0f, x, {{0, xc}, {1, mi}, {2, S(1)}});
    b.denoised(mi);
    renoise_sigma(b, m.sigma[i + 1]);
    prev_order = order;
  }
  return p;
}

}  // namespace sdgen::sampling
