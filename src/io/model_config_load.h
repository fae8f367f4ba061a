// ModelConfig from what a checkpoint carries: diffusers config.json files, an sdgen_config sidecar
// (same field names, for LDM files whose heads/groups shapes cannot tell), or tensor shapes.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sdgen/config.h"
#include "sdgen/tensor.h"

namespace sdgen {

// Reads and parses a JSON file; Error(kModel) naming the file when missing or malformed.
nlohmann::json read_json_file(const std::string& path);

// The fields of diffusers' / transformers' config.json applied over `cfg` (absent or null fields
// keep their value). `where` names the source in error messages.
//   unet: in_channels, out_channels, block_out_channels, down_block_types, layers_per_block,
//         attention_head_dim (SD v1: the head count; int or equal list) or num_attention_heads,
//         cross_attention_dim, norm_num_groups, norm_eps
//   vae: latent_channels, in_channels, out_channels, block_out_channels, layers_per_block, norm_num_groups,
//        scaling_factor
//   text_encoder: vocab_size, max_position_embeddings, hidden_size, num_hidden_layers,
//                 num_attention_heads, intermediate_size, hidden_act, layer_norm_eps
//   scheduler: num_train_timesteps, beta_start, beta_end, beta_schedule, steps_offset, set_alpha_to_one
void apply_unet_json(const nlohmann::json& j, UNetConfig& cfg, const std::string& where);
// A tokenizer folder's tokenizer_config.json or special_tokens_map.json: its pad token, when it
// names one (returns whether it did).
bool apply_tokenizer_json(const nlohmann::json& j, TokenizerConfig& c, const std::string& where);
void apply_vae_json(const nlohmann::json& j, VaeConfig& cfg, const std::string& where);
// with_projection: also projection_dim (CLIPTextModelWithProjection, SDXL's text_encoder_2).
void apply_clip_json(const nlohmann::json& j, ClipConfig& cfg, const std::string& where, bool with_projection = false);
void apply_scheduler_json(const nlohmann::json& j, SchedulerConfig& cfg, const std::string& where);
// {"unet": {...}, "vae": {...}, "text_encoder": {...}, "scheduler": {...}}, every part optional.
void apply_sdgen_config_json(const nlohmann::json& j, ModelConfig& cfg, const std::string& where);

// The architecture of an LDM single file from its tensor names and shapes. Heads (UNet 8, CLIP
// hidden/64), GroupNorm groups (32), eps and the scheduler keep their SD v1 defaults.
using ShapeOf = std::function<std::optional<Shape>(const std::string& name)>;
ModelConfig infer_ldm_config(const std::vector<std::string>& names, const ShapeOf& shape_of,
                             const std::string& where);

// The same from a diffusers folder's canonical names ("unet.*", "vae.*", "text_encoder.*"), for
// folders that lack a component's config.json.
ModelConfig infer_diffusers_config(const std::vector<std::string>& names, const ShapeOf& shape_of,
                                   const std::string& where);

// The invariants the models rely on (level counts, widths divisible by heads and groups).
// Error(kModel) naming `where` and the field.
void validate_model_config(const ModelConfig& cfg, const std::string& where);

}  // namespace sdgen
