// The sampler registry (sampler.h): names, what each offers, and the one check of the sampler
// options. Apart from the plans, so that option readers need none of the samplers' math.
#include "sampler/sampler.h"
#include "sdgen/error.h"

namespace sdgen {

const std::vector<SamplerInfo>& samplers() {
  static const std::vector<SamplerInfo> all = {
      {SamplerKind::Ddim, "ddim", "DDIM", "DDIMScheduler", false, false, "leading"},
      {SamplerKind::Pndm, "pndm", "PLMS", "PNDMScheduler (skip_prk_steps)", false, false, "leading"},
      {SamplerKind::Lms, "lms", "LMS", "LMSDiscreteScheduler", false, true, "linspace"},
      {SamplerKind::Euler, "euler", "Euler", "EulerDiscreteScheduler", false, true, "linspace"},
      {SamplerKind::EulerA, "euler_a", "Euler a", "EulerAncestralDiscreteScheduler", true, false, "linspace"},
      {SamplerKind::Heun, "heun", "Heun", "HeunDiscreteScheduler", false, true, "linspace"},
      {SamplerKind::Dpm2, "dpm2", "DPM2", "KDPM2DiscreteScheduler", false, true, "linspace"},
      {SamplerKind::Dpmpp2m, "dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", false, true, "linspace"},
      {SamplerKind::Dpmpp2mSde, "dpmpp_2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler (algorithm_type sde-dpmsolver++)", true, true,
       "linspace"},
      {SamplerKind::UniPc, "unipc", "UniPC", "UniPCMultistepScheduler", false, true, "linspace"},
  };
  return all;
}

const SamplerInfo& sampler_info(SamplerKind kind) {
  for (const SamplerInfo& s : samplers())
    if (s.kind == kind) return s;
  throw Error(ExitCode::kInternal, "sampler_info: a sampler kind without its registry entry");
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

const char* schedule_name(Schedule s) { return s == Schedule::Karras ? "karras" : "default"; }

bool parse_schedule(const std::string& text, Schedule* out) {
  if (text == "default") *out = Schedule::Default;
  else if (text == "karras") *out = Schedule::Karras;
  else return false;
  return true;
}

SamplerOptions parse_sampler_options(const std::string& sampler, const std::string& schedule, float eta) {
  SamplerOptions o;
  const SamplerInfo* info = find_sampler(sampler);
  if (!info) throw_usage("--sampler '" + sampler + "' is not available (" + sampler_names() + ")");
  o.kind = info->kind;
  if (!parse_schedule(schedule, &o.schedule)) throw_usage("--schedule '" + schedule + "' is not one of default, karras");
  o.eta = eta;
  return o;
}

std::string sampler_problem(const SamplerOptions& o) {
  const SamplerInfo& info = sampler_info(o.kind);
  if (o.karras() && !info.karras)
    return std::string("--schedule karras is not available for ") + info.name + " (diffusers' " +
           info.diffusers_class + " has no Karras sigmas)";
  if (!(o.eta >= 0.0f && o.eta <= 1.0f)) return "--eta must be between 0 and 1";
  if (o.eta != 0.0f && o.kind != SamplerKind::Ddim) return "--eta applies to --sampler ddim only";
  return "";
}

std::string a1111_sampler_name(const SamplerOptions& o) {
  std::string s = sampler_info(o.kind).a1111;
  if (o.karras()) s += " Karras";
  return s;
}

bool from_a1111_sampler_name(const std::string& name, SamplerOptions* o) {
  for (const SamplerInfo& i : samplers()) {
    const std::string plain = i.a1111;
    if (name != plain && !(i.karras && name == plain + " Karras")) continue;
    o->kind = i.kind;
    o->schedule = name == plain ? Schedule::Default : Schedule::Karras;
    return true;
  }
  return false;
}

}  // namespace sdgen
