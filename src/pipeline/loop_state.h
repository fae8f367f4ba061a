// The denoising loop's device state (Pipeline::LoopState), shared by the files that build the step
// (pipeline.cpp, control.cpp); private to the pipeline.
#pragma once
#include <memory>
#include <vector>

#include "pipeline/pipeline.h"
#include "sdgen/backend.h"
#include "unet/blocks.h"

namespace sdgen {

struct Pipeline::LoopState {
  StepGraphKey key{};
  Tensor x, timesteps, coefs, step;
  // The plan's (sampler.h): the UNet input's divisors, the state buffers, the per-unit noise draws.
  Tensor divisors, state, noise;
  // Inpainting: the picture's latents, the start's noise, the latent mask and the renoise table;
  // with a 9-channel model instead the UNet's extra input channels, [rows, h, w, 5] in its dtype.
  Tensor inpaint_x0, inpaint_noise, inpaint_mask, renoise, inpaint_cond;
  // Previews: the plan's denoised-estimate table and the estimate of the last unit, [B, h, w, C].
  Tensor denoised, preview;
  CrossContext cross;  // the text context and its cross-attention keys and values
  // ControlNets (pipeline/control.cpp): per net its hint embedding and context; the units' scales.
  std::vector<Tensor> control_hint;
  std::vector<CrossContext> control_cross;
  Tensor control_scales;
  std::unique_ptr<Graph> graph;
};

}  // namespace sdgen
