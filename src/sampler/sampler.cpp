// plan_sampler (sampler.h): the registry's check, then the sampler's own plan.
#include "sampler/sampler.h"

#include "sampler/k_samplers.h"
#include "sdgen/error.h"

namespace sdgen {

bool SamplerPlan::stochastic() const {
  for (bool d : draws_noise)
    if (d) return true;
  return false;
}

SamplerPlan plan_sampler(const SamplerOptions& o, const SchedulerConfig& cfg, int steps) {
  if (const std::string why = sampler_problem(o); !why.empty()) throw_usage(why);
  if (steps < 1 || steps > cfg.train_timesteps)
    throw_usage("steps must be between 1 and " + std::to_string(cfg.train_timesteps));
  using namespace sampling;
  const bool k = o.karras();
  switch (o.kind) {
    case SamplerKind::Ddim: return plan_ddim(cfg, steps, o.eta);
    case SamplerKind::Pndm: return plan_pndm(cfg, steps);
    case SamplerKind::Lms: return plan_lms(cfg, steps, k);
    case SamplerKind::Euler: return plan_euler(cfg, steps, k);
    case SamplerKind::EulerA: return plan_euler_ancestral(cfg, steps);
    case SamplerKind::Heun: return plan_heun(cfg, steps, k);
    case SamplerKind::Dpm2: return plan_dpm2(cfg, steps, k);
    case SamplerKind::Dpmpp2m: return plan_dpmpp_2m(cfg, steps, k, false);
    case SamplerKind::Dpmpp2mSde: return plan_dpmpp_2m(cfg, steps, k, true);
    case SamplerKind::UniPc: return plan_unipc(cfg, steps, k);
  }
  throw Error(ExitCode::kInternal, "plan_sampler: a sampler kind without a plan");
}

}  // namespace sdgen
