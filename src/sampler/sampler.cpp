// The sampler registry and plan_sampler (sampler.h).
#include "sampler/sampler.h"

#include "sampler/k_samplers.h"
#include "sdgen/error.h"

namespace sdgen {

const std::vector<SamplerInfo>& samplers() {
  static const std::vector<SamplerInfo> all = {
      {"ddim", "DDIM", "DDIMScheduler", false, false, "leading"},
      {"pndm", "PLMS", "PNDMScheduler (skip_prk_steps)", false, false, "leading"},
      {"lms", "LMS", "LMSDiscreteScheduler", false, true, "linspace"},
      {"euler", "Euler", "EulerDiscreteScheduler", false, true, "linspace"},
      {"euler_a", "Euler a", "EulerAncestralDiscreteScheduler", true, false, "linspace"},
      {"heun", "Heun", "HeunDiscreteScheduler", false, true, "linspace"},
      {"dpm2", "DPM2", "KDPM2DiscreteScheduler", false, true, "linspace"},
      {"dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", false, true, "linspace"},
      {"dpmpp_2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler (algorithm_type sde-dpmsolver++)", true, true,
       "linspace"},
      {"unipc", "UniPC", "UniPCMultistepScheduler", false, true, "linspace"},
  };
  return all;
}

const SamplerInfo* find_sampler(const std::string& name) {
  for (const SamplerInfo& s : samplers())
    if (name == s.name) return &s;
  return nullptr;
}

std::string sampler_names() {
  std::string s;
  for (const SamplerInfo& i : samplers()) s += (s.empty() ? "" : ", ") + std::string(i.name);
  return s;
}

std::string a1111_sampler_name(const SamplerOptions& o) {
  const SamplerInfo* info = find_sampler(o.name);
  std::string s = info ? info->a1111 : o.name;
  if (o.karras) s += " Karras";
  return s;
}

bool SamplerPlan::stochastic() const {
  for (bool d : draws_noise)
    if (d) return true;
  return false;
}

SamplerPlan plan_sampler(const SamplerOptions& o, const SchedulerConfig& cfg, int steps) {
  const SamplerInfo* info = find_sampler(o.name);
  if (!info) throw_usage("sampler '" + o.name + "' is not available (" + sampler_names() + ")");
  if (o.karras && !info->karras)
    throw_usage("--schedule karras is not available for " + o.name + " (diffusers' " + info->diffusers_class +
                " has no Karras sigmas)");
  if (o.eta != 0.0f && o.name != "ddim") throw_usage("--eta applies to ddim only");
  if (!(o.eta >= 0.0f && o.eta <= 1.0f)) throw_usage("--eta must be between 0 and 1");
  if (steps < 1 || steps > cfg.train_timesteps)
    throw_usage("steps must be between 1 and " + std::to_string(cfg.train_timesteps));
  using namespace sampling;
  const std::string& n = o.name;
  if (n == "ddim") return plan_ddim(cfg, steps, o.eta);
  if (n == "pndm") return plan_pndm(cfg, steps);
  if (n == "lms") return plan_lms(cfg, steps, o.karras);
  if (n == "euler") return plan_euler(cfg, steps, o.karras);
  if (n == "euler_a") return plan_euler_ancestral(cfg, steps);
  if (n == "heun") return plan_heun(cfg, steps, o.karras);
  if (n == "dpm2") return plan_dpm2(cfg, steps, o.karras);
  if (n == "dpmpp_2m") return plan_dpmpp_2m(cfg, steps, o.karras, false);
  if (n == "dpmpp_2m_sde") return plan_dpmpp_2m(cfg, steps, o.karras, true);
  return plan_unipc(cfg, steps, o.karras);
}

}  // namespace sdgen
