// How much memory a generation needs, from the model config and the settings alone, so that sd-gen
// can refuse a size or batch that cannot fit before it loads a weight or draws a latent (exit code
// 5 with the estimate and the limit), instead of failing an allocation halfway through a run.
//
// weights: the parameters the pipeline keeps (CLIP text encoder, UNet, VAE decoder; the VAE encoder
//   too for images in, MemoryRequest::encoder), as the models
//   constructed from the config on the meta device hold them (dry_run.h), times the precision's size.
// UNet and VAE working sets: the most activation bytes alive at once in a dry pass of the model
//   code itself at the request's shapes (dry_run.h): one UNet call on its 2×batch latents with
//   guidance, one VAE pass on one image; measured in fp32, so in elements once divided by 4.
// Each working set is then scaled by a factor per backend that covers what the pass leaves out,
//   calibrated against measurements and held by the tests (tests/test_memory_estimate.cpp,
//   tests/simt/test_census.cpp):
//   - CUDA: the pool keeps blocks by size (cuda_memory.h), and the recorded step owns every block it
//     allocated, so the pool holds more than the live set: 2.13–2.41× for the UNet and 1.85–1.90×
//     for the VAE in the census of the tiny test model and full-size SD v1.5; factors 2.5 and 2.0.
//     The UNet's set stays allocated during the VAE when the step's graph is kept for a next call.
//   - CPU: no pool, but the ops widen fp16 inputs to fp32 and each thread keeps scratch buffers;
//     measured peak RSS is 1.1–1.2× the fp32 live set (fp32) and up to 1.6× (fp16), factors 1.5 and
//     1.6 on 4-byte elements, plus the process itself (256 MiB in a build linked with the CUDA
//     libraries, which alone keep 220 MiB resident; 64 MiB without) and 48 MiB per thread (its
//     scratch buffers, and what malloc keeps of small freed blocks).
// It is an estimate for refusing what cannot fit, meant to err high by up to about a third.
// Not counted: what the loaders hold while they open a file, before the check runs and freed
// before the weights load. Each is bounded so that it stays small beside the weights, whatever
// the file claims: a safetensors header's parsed JSON (text at most 100,000,000 bytes as the
// format allows, and 1,000,000 JSON values: ~150 MB at worst, ~1 MB for an SD checkpoint;
// io/safetensors.cpp), a .ckpt's unpickled objects (at most one per 2 bytes of its pickle and
// 2,000,000: ~500 MB at worst, a few MB for an SD checkpoint; io/torch_checkpoint.cpp), and the
// jobs of a prompt file (64 MiB, lines of 1 MiB, 1,000,000 prompts of ~650 bytes each once read:
// ~650 MB at worst; cli/prompt_file.cpp).
#pragma once
#include <cstdint>
#include <string>

#include "sdgen/config.h"
#include "sdgen/tensor.h"

namespace sdgen {

// Parameters the pipeline loads (text encoder, UNet, VAE decoder; not the VAE encoder): what the
// models constructed from the config hold (dry_run.h).
int64_t clip_parameters(const ClipConfig& c);
int64_t unet_parameters(const UNetConfig& c);
int64_t vae_decoder_parameters(const VaeConfig& c);
// The VAE encoder's (loaded only for images in: MemoryRequest::encoder, ModelOptions::need_encoder).
int64_t vae_encoder_parameters(const VaeConfig& c);
// A ControlNet's beside a UNet of config c (SD's hint encoder).
int64_t controlnet_parameters(const UNetConfig& c);

struct MemoryRequest {
  DType precision = DType::F32;
  Device device = Device::CPU;
  int batch = 1;  // images of one pipeline call
  int width = 512, height = 512;
  int steps = 25;
  bool guidance = true;            // classifier-free guidance doubles the UNet's batch
  bool keep_step_graph = false;    // CUDA: the recorded step's buffers stay during the VAE decode
  int vae_batch = 1;               // images per VAE pass (GenerateParams::vae_batch)
  int threads = 1;                 // CPU: threads that keep scratch buffers
  bool cuda_libraries_loaded = false;  // CPU: the process has the CUDA libraries mapped (220 MiB)
  bool encoder = false;  // images in: the VAE encoder's weights, and one encode pass of vae_batch images
  // --vae-tiny: TAESD's decoder (its weights and pass) instead of the full VAE decoder's. The
  // architecture is SD's TAESD (TaesdConfig's defaults): the check runs before any file is read.
  bool vae_tiny = false;
  // ControlNets (SD's architecture over the model's UNet): their weights, and in the UNet's working set
  // their passes and residuals.
  int controlnets = 0;
};

struct MemoryEstimate {
  uint64_t weights = 0;
  uint64_t unet = 0;     // one UNet call's working set, with the backend's factor
  uint64_t vae = 0;      // one VAE pass (of vae_batch images)
  uint64_t vae_encode = 0;  // one VAE encoder pass (of vae_batch images); 0 without MemoryRequest::encoder
  uint64_t other = 0;    // latents and sampler state, images, the process (CPU), workspaces (CUDA)
  uint64_t activations() const;  // what a generation adds to the loaded weights at its peak
  uint64_t total() const { return weights + activations(); }
  bool stages_add = false;       // UNet and VAE sets held together (a kept CUDA graph)
};

// width and height as the pipeline takes them: latents (1/8 the side) that the UNet's levels halve
// evenly; otherwise Error(kUsage) from the UNet, as a generation of that size would end.
MemoryEstimate estimate_memory(const ModelConfig& m, const MemoryRequest& r);

// "3.2 GiB" (binary units, one decimal; MiB below 1 GiB).
std::string format_bytes(uint64_t bytes);
// "3.2 GiB (weights 2.0 GiB, UNet 0.7 GiB, VAE decode 0.8 GiB, other 0.1 GiB)"
std::string describe(const MemoryEstimate& e);

// A size as users write it: 8G, 512M, 1.5GiB, 2000000000 (bytes); K, M, G, T are binary (KiB, ...),
// as free(1) and Slurm's --mem read them. Throws a usage error naming `what` otherwise.
uint64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace sdgen
