// The hires fix (A1111's "Hires. fix"): a text-to-image pass at the run's size, an upscale of its
// result to the hires size, then img2img at that size from the upscaled result
// (Pipeline::generate with GenerateParams::hires set; pipeline/hires.cpp):
//   latent upscalers: the first pass's final latents interpolated (pipeline/latent_upscale.h) are
//     the second pass's clean latents (diffusers' StableDiffusionImg2ImgPipeline given 4-channel
//     latents as its image: no encode), noised by the plan's add_noise at the denoise's begin step;
//   lanczos: the first pass's 8-bit images, each resized by resize_lanczos (PIL's LANCZOS), start the
//     second pass as --init-image pictures do (encoded, sampled, scaled, noised; with --vae-tiny and
//     a TAESD encoder, encoded by it and not sampled, as diffusers' pipelines with AutoencoderTiny).
// Both passes: the same prompts, negative prompt, guidance and sampler; the second pass is seeded
// again with the run's seed (a fresh generator, as A1111 reseeds its hires pass).
#pragma once
#include <string>

#include "pipeline/latent_upscale.h"

namespace sdgen {

enum class HiresUpscaler { Latent, LatentNearest, LatentBicubic, Lanczos };

// --hires-upscaler's words: latent, latent-nearest, latent-bicubic, lanczos.
const char* hires_upscaler_name(HiresUpscaler u);
// A1111's names, as its PNG parameters write them: "Latent", "Latent (nearest)", ...
const char* hires_upscaler_a1111(HiresUpscaler u);
bool is_latent_upscaler(HiresUpscaler u);
LatentUpscaleMode latent_upscale_mode(HiresUpscaler u);  // of a latent upscaler

struct HiresParams {
  int width = 0, height = 0;  // the second pass's size; 0: no hires pass
  int steps = 0;              // the second pass's steps; 0: the first pass's
  double denoise = 0.7;       // the second pass's strength (diffusers' semantics, as --strength)
  HiresUpscaler upscaler = HiresUpscaler::Latent;
  bool enabled() const { return width > 0 && height > 0; }
};

// A1111's hires side from a scale: int(side · scale), in double as Python computes it.
int hires_side(int side, double scale);

}  // namespace sdgen
