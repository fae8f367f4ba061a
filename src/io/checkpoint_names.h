// The LDM <-> canonical (diffusers, component-prefixed) tensor-name mapping of an SD v1 model.
// One table: module rows (an LDM module path <-> a diffusers module path, generated from the
// config's level count, resnets per level and attention levels, so a tiny model maps like the real
// one) and, per module kind, the renaming of the parameters inside it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sdgen/config.h"

namespace sdgen {

class CheckpointNames {
 public:
  explicit CheckpointNames(const ModelConfig& cfg);

  // "model.diffusion_model.input_blocks.1.0.in_layers.0.weight" ->
  // "unet.down_blocks.0.resnets.0.norm1.weight". nullopt for names outside the inference model
  // (model_ema.*, the CLIP's position_ids buffer is mapped but is not a float tensor) or unknown.
  std::optional<std::string> to_canonical(const std::string& ldm) const;
  // The inverse; nullopt when the canonical name has no LDM counterpart under this config.
  std::optional<std::string> to_ldm(const std::string& canonical) const;

  // The text encoder's root in each layout: the LDM file's "cond_stage_model.transformer" and the
  // diffusers folder's component "text_encoder". Below it, transformers 4 (and LDM files made from
  // it) put everything under "text_model."; transformers 5 saves CLIPTextModel without that level,
  // and diffusers' convert_diffusers_to_original_stable_diffusion.py keeps whatever it was given,
  // as do older community files. Canonical names always have it.
  static constexpr const char* kLdmClipRoot = "cond_stage_model.transformer";
  static constexpr const char* kDiffusersClipRoot = "text_encoder";
  // Whether stored names under `root` use the "text_model." level: true when any name does, or
  // when none is under `root` at all (then nothing is renamed). A file is one form or the other.
  static bool clip_has_text_model(const std::vector<std::string>& stored, const std::string& root);
  // "<root>.embeddings.x" -> "<root>.text_model.embeddings.x"; other names unchanged.
  static std::string clip_add_text_model(const std::string& stored, const std::string& root);
  // The inverse, for naming the stored tensor in errors about a prefix-less file.
  static std::string clip_drop_text_model(const std::string& name, const std::string& root);

  // SD 2.x's text encoder in an LDM file: OpenCLIP's names under "cond_stage_model.model." (open_clip's
  // TextTransformer: resblocks with one packed q/k/v projection, ln_final, positional_embedding).
  // Each canonical CLIPTextModel tensor and the stored tensor it reads: for q/k/v, `rows` rows of
  // the packed in_proj_weight/in_proj_bias from row0 (rows -1: the whole tensor). `layers` are the
  // blocks that run (SD 2 stores one more, never run: checkpoint.cpp).
  static constexpr const char* kLdmOpenClipRoot = "cond_stage_model.model";
  // SDXL's: CLIP ViT-L as transformers names it under kSdxlClipRoot, OpenCLIP bigG under
  // kSdxlOpenClipRoot for the canonical "text_encoder_2", its text_projection ([hidden, projection],
  // applied as x @ P) the transpose of transformers' text_projection.weight.
  static constexpr const char* kSdxlClipRoot = "conditioner.embedders.0.transformer";
  static constexpr const char* kSdxlOpenClipRoot = "conditioner.embedders.1.model";
  struct OpenClipTensor {
    std::string canonical, stored;
    int64_t row0 = 0, rows = -1;
    bool transpose = false;
  };
  // root: the stored root; component: the canonical one; projection: with text_projection.
  static std::vector<OpenClipTensor> open_clip_tensors(int layers, int64_t hidden, const std::string& root = kLdmOpenClipRoot,
                                                       const std::string& component = "text_encoder",
                                                       bool projection = false);

  // Older diffusers folders (before 0.14) name the VAE's attention parameters query/key/value/
  // proj_attn: the stored name to try when the canonical diffusers name is absent.
  static std::optional<std::string> legacy_diffusers_name(const std::string& canonical);
  // The inverse: "vae.decoder.mid_block.attentions.0.query.weight" -> "...to_q.weight".
  static std::optional<std::string> canonical_from_legacy(const std::string& legacy);

  enum class Kind : unsigned char { Plain, UNetResnet, Transformer, VaeResnet, VaeAttention, Clip };
  struct Module {
    std::string ldm;    // full LDM module path, e.g. "model.diffusion_model.input_blocks.1.0"
    std::string canon;  // e.g. "unet.down_blocks.0.resnets.0"
    Kind kind;
  };
  const std::vector<Module>& modules() const { return modules_; }

 private:
  std::optional<std::string> map(const std::string& name, bool from_ldm) const;
  void add(const std::string& ldm, const std::string& canon, Kind kind);
  std::vector<Module> modules_;
  std::unordered_map<std::string, size_t> by_ldm_, by_canon_;
};

}  // namespace sdgen
