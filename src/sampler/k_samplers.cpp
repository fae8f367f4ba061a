// The sigma-space samplers of diffusers (Euler, Euler ancestral, Heun, DPM2, LMS): latents scaled
// by σ, the UNet fed x / √(σ² + 1), ε-prediction's x0 = x − σ·ε, so the derivative (x − x0)/σ is
// ε itself and every update is x plus multiples of the model outputs. Sigmas are the training
// sigmas interpolated at the timesteps (or Karras's schedule between the same end points), with 0
// appended; diffusers casts them to float32, and so do we.
#include <algorithm>
#include <cmath>

#include "sampler/k_samplers.h"
#include "sampler/linear_form.h"
#include "sdgen/error.h"

namespace sdgen::sampling {

namespace {
using namespace schedule;

struct Sigmas {
  std::vector<double> t;     // [n] the UNet's timesteps
  std::vector<float> sigma;  // [n + 1], the last 0
  std::vector<float> log_train;
};

// set_timesteps of EulerDiscrete/Heun/KDPM2/LMS: interpolated sigmas, or Karras's between the
// first and last of them with the timesteps mapped back (rounded for KDPM2).
Sigmas k_sigmas(const SchedulerConfig& cfg, const char* class_spacing, int n, bool karras, bool round_karras_t) {
  Sigmas s;
  const std::vector<float> train = train_sigmas(cfg);
  s.log_train = log_sigmas(train);
  s.t = discrete_timesteps(cfg, spacing(cfg, class_spacing), n);
  std::vector<double> sig;
  for (double t : s.t) sig.push_back(interp(t, train));
  if (karras) {
    sig = schedule::karras(sig.back(), sig.front(), n);
    for (size_t i = 0; i < sig.size(); ++i) {
      const double t = sigma_to_t(sig[i], s.log_train);
      s.t[i] = round_karras_t ? std::nearbyint(t) : t;
    }
  }
  for (double v : sig) s.sigma.push_back((float)v);
  s.sigma.push_back(0.0f);
  for (double& t : s.t) t = (float)t;
  return s;
}

// init_noise_sigma: σ_max, or √(σ_max² + 1) with leading spacing.
float init_sigma(const SchedulerConfig& cfg, const char* class_spacing, const Sigmas& s) {
  const float m = s.sigma.front();
  return spacing(cfg, class_spacing) == "leading" ? std::sqrt(m * m + 1.0f) : m;
}

// The starts of the plan: text-to-image scales the noise by init_noise_sigma; img2img mixes the
// image's latents with noise as EulerDiscrete's add_noise (shared by the classes here) does at
// the begin index: x0 + noise·σ[begin].
void set_start(SamplerPlan& p, const SchedulerConfig& cfg, const char* class_spacing, const Sigmas& s, int begin) {
  p.init_sigma = init_sigma(cfg, class_spacing, s);
  p.init_x0 = 1.0f;
  p.init_noise = s.sigma[(size_t)begin];
}
}  // namespace

SamplerPlan plan_euler(const SchedulerConfig& cfg, int n, bool karras, int begin) {
  SamplerPlan p;
  const Sigmas s = k_sigmas(cfg, "linspace", n, karras, false);
  set_start(p, cfg, "linspace", s, begin);
  PlanBuilder b(p, 0);
  for (int i = begin; i < n; ++i) {
    const Lin e = k_eps(v_prediction(cfg), s.sigma[i]);
    b.unit(s.t[i], input_divisor(s.sigma[i]), X + ((double)s.sigma[i + 1] - s.sigma[i]) * e);
    b.denoised(X - (double)s.sigma[i] * e);
    b.renoise_after(1.0f, s.sigma[i + 1]);
  }
  return p;
}

SamplerPlan plan_euler_ancestral(const SchedulerConfig& cfg, int n, int begin) {
  SamplerPlan p;
  const Sigmas s = k_sigmas(cfg, "linspace", n, false, false);
  set_start(p, cfg, "linspace", s, begin);
  PlanBuilder b(p, 0);
  for (int i = begin; i < n; ++i) {
    // float32, as diffusers computes them from its float32 sigmas
    const float from = s.sigma[i], to = s.sigma[i + 1];
    const float up = std::sqrt(to * to * (from * from - to * to) / (from * from));
    const float down = std::sqrt(to * to - up * up);
    const Lin e = k_eps(v_prediction(cfg), from);
    b.unit(s.t[i], input_divisor(from), X + ((double)down - from) * e + (double)up * Z, {}, true);
    b.denoised(X - (double)from * e);
    b.renoise_after(1.0f, to);
  }
  return p;
}

// Heun: a first-order (Euler) unit to σ_next that keeps the sample and derivative, then a
// second-order unit at σ_next that restarts from the kept sample with the mean derivative. The
// last step, to σ = 0, is Euler alone: 2n − 1 units. Its interleaved sigmas put step i at index
// 2i, so diffusers' begin index 2·begin (order 2) is step `begin`.
SamplerPlan plan_heun(const SchedulerConfig& cfg, int n, bool karras, int begin) {
  SamplerPlan p;
  const Sigmas s = k_sigmas(cfg, "linspace", n, karras, false);
  set_start(p, cfg, "linspace", s, begin);
  PlanBuilder b(p, 2);  // s0: the sample before the Euler unit, s1: its derivative
  for (int i = begin; i < n; ++i) {
    const double dt = (double)s.sigma[i + 1] - s.sigma[i];
    // Both units leave the latents at σ_{i+1} (the interleaved sigmas' next entry).
    const Lin e = k_eps(v_prediction(cfg), s.sigma[i]);
    b.unit(s.t[i], input_divisor(s.sigma[i]), X + dt * e, {{0, X}, {1, e}});
    b.denoised(X - (double)s.sigma[i] * e);
    b.renoise_after(1.0f, s.sigma[i + 1]);
    if (i + 1 < n) {
      // The UNet saw the Euler unit's sample at σ_{i+1} (diffusers' sigma_input: σ_next).
      const Lin e2 = k_eps(v_prediction(cfg), s.sigma[i + 1]);
      b.unit(s.t[i + 1], input_divisor(s.sigma[i + 1]), S(0) + (dt / 2) * S(1) + (dt / 2) * e2);
      b.denoised(X - (double)s.sigma[i + 1] * e2);
      b.renoise_after(1.0f, s.sigma[i + 1]);
    }
  }
  return p;
}

// DPM2 (KDPM2Discrete): Euler to the log-midpoint σ_mid = √(σ_i·σ_{i+1}), then from the kept
// sample to σ_{i+1} with the derivative at σ_mid; the last step, to 0, is Euler alone.
SamplerPlan plan_dpm2(const SchedulerConfig& cfg, int n, bool karras, int begin) {
  SamplerPlan p;
  const Sigmas s = k_sigmas(cfg, "linspace", n, karras, true);
  set_start(p, cfg, "linspace", s, begin);
  // sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp() in float32; the one before 0 is 0
  std::vector<float> mid(n + 1, 0.0f);
  for (int k = 1; k < n; ++k) {
    const float a = std::log(s.sigma[k]), c = std::log(s.sigma[k - 1]);
    mid[k] = std::exp(c - (c - a) * 0.5f);
  }
  PlanBuilder b(p, 1);  // s0: the sample before the first half
  for (int i = begin; i < n; ++i) {
    // add_noise reads the interleaved main sigmas, not the midpoints: σ_{i+1} after both units.
    const Lin e = k_eps(v_prediction(cfg), s.sigma[i]);
    b.unit(s.t[i], input_divisor(s.sigma[i]), X + ((double)mid[i + 1] - s.sigma[i]) * e, {{0, X}});
    b.denoised(X - (double)s.sigma[i] * e);
    b.renoise_after(1.0f, s.sigma[i + 1]);
    if (i + 1 < n) {
      const Lin e2 = k_eps(v_prediction(cfg), mid[i + 1]);  // the sample at the midpoint
      b.unit((float)sigma_to_t(mid[i + 1], s.log_train), input_divisor(mid[i + 1]),
             S(0) + ((double)s.sigma[i + 1] - s.sigma[i]) * e2);
      b.denoised(X - (double)mid[i + 1] * e2);
      b.renoise_after(1.0f, s.sigma[i + 1]);
    }
  }
  return p;
}

namespace {
// ∫_a^b of the Lagrange basis polynomial `j` over the nodes xs (degree < 4): 5-point
// Gauss–Legendre is exact for it (diffusers integrates it with scipy's quad, also exact here).
double lagrange_integral(const std::vector<double>& xs, int j, double a, double b) {
  static const double node[5] = {0.0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640,
                                 0.9061798459386640};
  static const double weight[5] = {0.5688888888888889, 0.4786286704993665, 0.4786286704993665,
                                   0.2369268850561891, 0.2369268850561891};
  double sum = 0;
  for (int q = 0; q < 5; ++q) {
    const double tau = (a + b) / 2 + (b - a) / 2 * node[q];
    double prod = 1;
    for (int k = 0; k < (int)xs.size(); ++k)
      if (k != j) prod *= (tau - xs[k]) / (xs[j] - xs[k]);
    sum += weight[q] * prod;
  }
  return sum * (b - a) / 2;
}
}  // namespace

// LMS: a linear multistep method of order up to 4 over the derivatives (= ε), newest first,
// with coefficients integrating the Lagrange polynomials through the last sigmas. diffusers takes
// the order from the step index (min(i + 1, 4) nodes) but sums only over the derivatives it has
// kept since its begin index, so an img2img start uses the first terms of a higher order.
SamplerPlan plan_lms(const SchedulerConfig& cfg, int n, bool karras, int begin) {
  SamplerPlan p;
  const Sigmas s = k_sigmas(cfg, "linspace", n, karras, false);
  set_start(p, cfg, "linspace", s, begin);
  PlanBuilder b(p, 3);  // s0, s1, s2: the derivatives of the last three steps, newest first
  for (int i = begin; i < n; ++i) {
    const int order = std::min(i + 1, 4);
    const int terms = std::min(order, i - begin + 1);
    std::vector<double> xs;
    for (int k = 0; k < order; ++k) xs.push_back(s.sigma[i - k]);
    const Lin e = k_eps(v_prediction(cfg), s.sigma[i]);  // the derivative (x − x0)/σ
    Lin x = X;
    for (int j = 0; j < terms; ++j) x = x + lagrange_integral(xs, j, s.sigma[i], s.sigma[i + 1]) * (j == 0 ? e : S(j - 1));
    b.unit(s.t[i], input_divisor(s.sigma[i]), x, {{0, e}, {1, S(0)}, {2, S(1)}});
    b.denoised(X - (double)s.sigma[i] * e);
    b.renoise_after(1.0f, s.sigma[i + 1]);
  }
  return p;
}

}  // namespace sdgen::sampling
