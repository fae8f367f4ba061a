// Phase markers: the pipeline names what it is doing ("weight_load", "text_encoder", "unet_step",
// "vae_decode"); a listener (benchmarks/cuda_census, which attributes the CUDA calls it counts to
// phases) installs a hook. Without a hook a marker costs one load and a branch.
#pragma once

namespace sdgen::trace {

// step: the sampler step for "unet_step", -1 otherwise. An empty name ends the current phase.
using PhaseHook = void (*)(const char* name, int step);
void set_phase_hook(PhaseHook hook);
void phase(const char* name, int step = -1);

}  // namespace sdgen::trace
