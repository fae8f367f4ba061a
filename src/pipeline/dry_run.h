// What one forward pass of a model costs, measured by running the model code itself on the meta
// device (Device::Meta, src/backend/meta_backend.cpp): the models are constructed from a config
// alone (every weight a tensor of the shape its module asks for, with no bytes) and their forward
// functions run unchanged, each op making an output of the right shape and adding its FLOPs. The
// architecture is thus described once, by the models: the FLOP count (flops.h), the parameter
// counts and the live sets of the memory estimate (memory_estimate.h) follow any change to them.
// A pass allocates nothing, so it takes milliseconds whatever the batch and size.
#pragma once
#include <cstdint>

#include "sdgen/config.h"
#include "sdgen/tensor.h"

namespace sdgen {

struct PassCost {
  int64_t parameters = 0;  // elements of the weights the constructed model holds
  double flops = 0;        // the pass's dense work (meta_backend.cpp says what is counted)
  // The most bytes the pass holds at once besides the weights and its inputs, its output included:
  // every activation of `dtype` at the moment the most of them are alive.
  uint64_t live_bytes = 0;
};

// The text encoder on `sequences` sequences of max_positions tokens.
PassCost clip_pass(const ClipConfig& c, int sequences, DType dtype = DType::F32);
// One UNet call on `batch` latents of latent_h × latent_w (multiples of 2^(levels-1)) with a text
// context of context_len tokens per latent (its cross-attention keys and values computed in the
// call, as UNet::forward does without a prepared context).
// With controlnets > 0, that many ControlNets of SD's architecture (ControlNetConfig's defaults over
// c) run first and their residuals are added (their parameters count too).
PassCost unet_pass(const UNetConfig& c, int batch, int latent_h, int latent_w, int context_len,
                   DType dtype = DType::F32, int controlnets = 0);
// The VAE decoder on `images` latents, decoding to height × width pixels (latents 1/8 the side).
PassCost vae_decoder_pass(const VaeConfig& c, int images, int height, int width, DType dtype = DType::F32);
// The VAE encoder (images in) on `images` images of height × width pixels, to their moments.
PassCost vae_encoder_pass(const VaeConfig& c, int images, int height, int width, DType dtype = DType::F32);
// TAESD's decoder (--vae-tiny) on `images` latents, decoding to height × width pixels.
PassCost taesd_decoder_pass(const TaesdConfig& c, int images, int height, int width, DType dtype = DType::F32);

}  // namespace sdgen
