// Plans of the individual samplers (sampler.h); plan_sampler picks one.
#pragma once
#include "sampler/sampler.h"

namespace sdgen::sampling {
SamplerPlan plan_euler(const SchedulerConfig& cfg, int steps, bool karras);
SamplerPlan plan_euler_ancestral(const SchedulerConfig& cfg, int steps);
SamplerPlan plan_heun(const SchedulerConfig& cfg, int steps, bool karras);
SamplerPlan plan_dpm2(const SchedulerConfig& cfg, int steps, bool karras);
SamplerPlan plan_lms(const SchedulerConfig& cfg, int steps, bool karras);
SamplerPlan plan_ddim(const SchedulerConfig& cfg, int steps, float eta);
SamplerPlan plan_pndm(const SchedulerConfig& cfg, int steps);
SamplerPlan plan_dpmpp_2m(const SchedulerConfig& cfg, int steps, bool karras, bool sde);
SamplerPlan plan_unipc(const SchedulerConfig& cfg, int steps, bool karras);
}  // namespace sdgen::sampling
