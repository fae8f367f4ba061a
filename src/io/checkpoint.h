// A Stable Diffusion v1.x checkpoint, whichever form it comes in:
//   - one .safetensors file with the original LDM names (model.diffusion_model.*,
//     first_stage_model.*, cond_stage_model.transformer[.text_model].*), fp32, fp16 or bf16;
//   - a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/).
// Tensors are looked up by one canonical name: the diffusers name with its component as prefix,
// e.g. "unet.down_blocks.0.resnets.0.norm1.weight", "vae.decoder.mid_block.attentions.0.to_q.weight",
// "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight". The LDM <-> diffusers mapping
// is one table (checkpoint_names.cpp).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdgen/config.h"
#include "sdgen/tensor.h"

namespace sdgen {

// The model names that open full-size SD v1.5 with random weights (io/random_checkpoint.h): the
// regular model and the inpainting one (sd-v1-5-inpainting: a 9-channel UNet).
inline constexpr const char* kRandomSd15 = "random:sd15";
inline constexpr const char* kRandomSd15Inpainting = "random:sd15-inpainting";
inline constexpr const char* kRandomSd21 = "random:sd21";  // SD 2.1 768-v (sd21_config)
inline constexpr const char* kRandomSdxl = "random:sdxl";  // SDXL base 1.0 (sdxl_config)
inline bool is_random_model(const std::string& path) {
  return path == kRandomSd15 || path == kRandomSd15Inpainting || path == kRandomSd21 || path == kRandomSdxl;
}

struct OpenOptions {
  // A single file with both: the UNet from its EMA copy (model_ema.*, LitEma's names: the
  // parameter name without dots) instead of model.diffusion_model.*. An error where there is none.
  bool ema = false;
};

class Checkpoint {
 public:
  // path: a .safetensors file, a diffusers folder, or a random model (kRandomSd15...). Throws Error(kModel) naming what
  // is wrong.
  static std::unique_ptr<Checkpoint> open(const std::string& path, const OpenOptions& options = {});
  virtual ~Checkpoint() = default;

  // The architecture: from the folder's config.json files when present, else inferred from tensor
  // shapes, with SD v1 defaults where shapes cannot tell (heads).
  virtual const ModelConfig& config() const = 0;
  // A short model name for image metadata (file or folder stem).
  virtual std::string name() const = 0;
  virtual bool has(const std::string& canonical_name) const = 0;
  // The tensor as a host fp32 tensor of shape `expected`, converted from fp16/bf16 as stored.
  // A stored shape equal to `expected` up to trailing 1-dims is accepted (LDM stores the VAE's
  // attention projections as [C, C, 1, 1] convs). Conv weights come as stored: [O, I, KH, KW].
  // Missing or mis-shaped: Error(kModel) naming the tensor, the expected and the found shape.
  virtual Tensor get(const std::string& canonical_name, const Shape& expected) const = 0;
  // The same, except that a tensor stored in `dtype` comes in that dtype, its bytes copied as
  // stored: an fp16 file loaded into an fp16 model then makes no round trip through fp32 (nor its
  // fp32 temporary). Otherwise fp32, as get().
  virtual Tensor get_stored(const std::string& canonical_name, const Shape& expected,
                            DType dtype) const {
    return get(canonical_name, expected);
  }
  // The shape as stored (e.g. [C, C, 1, 1] for an LDM VAE attention weight); nullopt when absent.
  virtual std::optional<Shape> stored_shape(const std::string& canonical_name) const { return std::nullopt; }
  // Every canonical name this checkpoint provides (for tests and diagnostics).
  virtual std::vector<std::string> names() const = 0;
  // A diffusers folder's tokenizer files, when it has them (they take precedence over weights/).
  virtual std::optional<std::string> tokenizer_vocab_json() const { return std::nullopt; }
  virtual std::optional<std::string> tokenizer_merges_txt() const { return std::nullopt; }
  // A transformers 5 tokenizer folder's tokenizer.json, when vocab.json + merges.txt are absent.
  virtual std::optional<std::string> tokenizer_json() const { return std::nullopt; }
  // What was assumed rather than read (a diffusers folder without a part's config.json or the
  // scheduler's), one "warning: ..." line each, for the log: the run goes on with SD v1's values.
  virtual std::vector<std::string> notes() const { return {}; }
};

}  // namespace sdgen
