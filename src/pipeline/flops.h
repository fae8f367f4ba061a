// The FLOP count of one generation, from the model config alone: the one place sd-gen bench (MFU),
// the CUDA census (beside its count of the recorded calls) and the tests take it from. Counted by a
// dry pass of the models themselves on the meta device (dry_run.h), so it follows the model code.
//
// Counted: the dense work, i.e. convolutions (2·H·W·Cout·Cin·k·k per image), linear layers
// (2·rows·in·out) and the two attention products (4·Lq·Lk·D summed over heads: Q·Kᵀ and P·V, each
// 2·Lq·Lk·D). Not counted: normalizations, activations, softmax, residual adds, the sampler; on SD
// v1.5 they are well under 1% of the total, and MFU is conventionally quoted on the dense work.
#pragma once
#include "sdgen/config.h"

namespace sdgen {

// One CLIP text encoder pass over `sequences` sequences of max_positions tokens.
double clip_flops(const ClipConfig& c, int sequences);
// One UNet evaluation on a batch of `batch` latents of latent_h × latent_w with a context of
// context_len tokens.
double unet_flops(const UNetConfig& c, int batch, int latent_h, int latent_w, int context_len);
// The VAE decoder on `images` latents decoding to height × width pixels (latents are 1/8 the side).
double vae_decoder_flops(const VaeConfig& c, int images, int height, int width);
// The VAE encoder (images in) on `images` images of height × width pixels, to their moments.
double vae_encoder_flops(const VaeConfig& c, int images, int height, int width);

struct WorkloadFlops {
  int text_sequences = 0;  // CLIP sequences: the negative and the positive prompt with guidance
  int unet_batch = 0;      // latents per UNet call: 2 × batch with guidance, else batch
  double clip = 0;          // the text encoder, once per generation
  double unet_per_step = 0;  // one sampler step (one UNet call)
  double vae = 0;            // decoding every image of the batch
  double total = 0;          // clip + steps × unet_per_step + vae
};

// A generation as the pipeline runs it: `batch` images of one prompt, `steps` DDIM steps, guidance
// > 1 running the unconditional half (as diffusers does), one UNet call per step.
WorkloadFlops workload_flops(const ModelConfig& m, int batch, int width, int height, int steps,
                             float guidance);

}  // namespace sdgen
