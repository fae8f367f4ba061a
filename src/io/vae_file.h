// --vae FILE: a VAE that replaces the checkpoint's, as people download them:
//   - a single .safetensors file with LDM names, bare ("encoder.", "decoder.", "post_quant_conv.",
//     as vae-ft-mse-840000-ema-pruned.safetensors) or under "first_stage_model." (a VAE cut out of a
//     checkpoint, or a whole SD v1 checkpoint, whose VAE is then taken); fp32, fp16 or bf16;
//   - a diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model[.fp16].safetensors),
//     or a pipeline folder holding one as vae/.
// Served under the canonical names ("vae.decoder.*", "vae.post_quant_conv.*") to VaeDecoder, and
// where the file has them "vae.encoder.*", "vae.quant_conv.*" to VaeEncoder (read only when asked).
#pragma once
#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "sdgen/config.h"

namespace sdgen {

struct VaeFile {
  std::unique_ptr<Checkpoint> weights;  // config() is the base model's with vae replaced
  VaeConfig config;                     // the folder's config.json over the model's; a single file keeps the model's
  std::string name;                     // the file or folder name, for "VAE: <name>" in the PNG metadata
};

// base: the model's config (a single file's architecture is taken to be the model's, and its norm
// groups and scaling factor, which shapes cannot tell). Error(kModel) naming the path for a missing,
// unreadable or pickle file, one without VAE decoder tensors; mis-shaped tensors fail when the
// decoder loads them, naming the tensor.
VaeFile open_vae_file(const std::string& path, const ModelConfig& base);

}  // namespace sdgen
