// Plans of the individual samplers (sampler.h); plan_sampler picks one.
#pragma once
#include "sampler/sampler.h"

namespace sdgen::sampling {
// begin: the first step to run (img2img's t_start, sampler.h); the plan starts there as diffusers'
// scheduler does after set_begin_index: no multistep history, and the initial latents' mix
// (SamplerPlan::init_x0, init_noise) is the scheduler's add_noise at that step.
SamplerPlan plan_euler(const SchedulerConfig& cfg, int steps, bool karras, int begin);
SamplerPlan plan_euler_ancestral(const SchedulerConfig& cfg, int steps, int begin);
SamplerPlan plan_heun(const SchedulerConfig& cfg, int steps, bool karras, int begin);
SamplerPlan plan_dpm2(const SchedulerConfig& cfg, int steps, bool karras, int begin);
SamplerPlan plan_lms(const SchedulerConfig& cfg, int steps, bool karras, int begin);
SamplerPlan plan_ddim(const SchedulerConfig& cfg, int steps, float eta, int begin);
SamplerPlan plan_pndm(const SchedulerConfig& cfg, int steps, int begin);
SamplerPlan plan_dpmpp_2m(const SchedulerConfig& cfg, int steps, bool karras, bool sde, int begin);
SamplerPlan plan_unipc(const SchedulerConfig& cfg, int steps, bool karras, int begin);
}  // namespace sdgen::sampling
