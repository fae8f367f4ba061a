// plan_sampler (sampler.h): the registry's check, then the sampler's own plan.
#include "sampler/sampler.h"

#include <algorithm>

#include "sampler/k_samplers.h"
#include "sdgen/error.h"

namespace sdgen {

bool SamplerPlan::stochastic() const {
  for (bool d : draws_noise)
    if (d) return true;
  return false;
}

int img2img_begin(int steps, double strength) {
  // Python's int() of a float product truncates toward zero; strength is a double, as Python's is
  // (a float strength would turn 10 × 0.7 into 6).
  const int init = std::min((int)((double)steps * strength), steps);
  return std::max(steps - init, 0);
}

SamplerPlan plan_sampler(const SamplerOptions& o, const SchedulerConfig& cfg, int steps, int begin) {
  if (const std::string why = sampler_problem(o); !why.empty()) throw_usage(why);
  if (steps < 1 || steps > cfg.train_timesteps)
    throw_usage("steps must be between 1 and " + std::to_string(cfg.train_timesteps));
  if (begin < 0 || begin >= steps)
    throw_usage("img2img would skip " + std::to_string(begin) + " of " + std::to_string(steps) +
                " steps and run none; raise --strength or --steps");
  using namespace sampling;
  // Zero terminal SNR: the samplers whose diffusers classes take rescale_betas_zero_snr. Heun, DPM2,
  // LMS and PNDM have no such schedule there (diffusers drops the flag and runs the model on betas it
  // was not trained with): refused rather than guessed.
  const bool zero_snr_sampler = o.kind == SamplerKind::Ddim || o.kind == SamplerKind::Euler ||
                                o.kind == SamplerKind::EulerA || o.kind == SamplerKind::Dpmpp2m ||
                                o.kind == SamplerKind::Dpmpp2mSde || o.kind == SamplerKind::UniPc;
  if (cfg.rescale_betas_zero_snr && !zero_snr_sampler)
    throw_usage("the model's scheduler config sets rescale_betas_zero_snr, which sd-gen runs with --sampler ddim, "
                "euler, euler_a, dpmpp_2m, dpmpp_2m_sde or unipc");
  const bool k = o.karras();
  switch (o.kind) {
    case SamplerKind::Ddim: return plan_ddim(cfg, steps, o.eta, begin);
    case SamplerKind::Pndm: return plan_pndm(cfg, steps, begin);
    case SamplerKind::Lms: return plan_lms(cfg, steps, k, begin);
    case SamplerKind::Euler: return plan_euler(cfg, steps, k, begin);
    case SamplerKind::EulerA: return plan_euler_ancestral(cfg, steps, begin);
    case SamplerKind::Heun: return plan_heun(cfg, steps, k, begin);
    case SamplerKind::Dpm2: return plan_dpm2(cfg, steps, k, begin);
    case SamplerKind::Dpmpp2m: return plan_dpmpp_2m(cfg, steps, k, false, begin);
    case SamplerKind::Dpmpp2mSde: return plan_dpmpp_2m(cfg, steps, k, true, begin);
    case SamplerKind::UniPc: return plan_unipc(cfg, steps, k, begin);
  }
  throw Error(ExitCode::kInternal, "plan_sampler: a sampler kind without a plan");
}

}  // namespace sdgen
