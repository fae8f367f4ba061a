// The one LDM <-> diffusers name table (facts from diffusers' loaders/single_file_utils.py:
// convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint).
#include "io/checkpoint_names.h"

#include <utility>

namespace sdgen {

namespace {

using Kind = CheckpointNames::Kind;

const char* const kUNet = "model.diffusion_model.";
const char* const kVae = "first_stage_model.";
const std::string kClip = std::string(CheckpointNames::kLdmClipRoot) + ".text_model";

bool starts_with(const std::string& s, const std::string& pre) { return s.compare(0, pre.size(), pre) == 0; }

struct Leaf {
  const char* ldm;
  const char* canon;
};
// Parameters inside a module: LDM sub-path <-> diffusers sub-path. Kinds without a list keep the
// sub-path unchanged (the LDM SpatialTransformer and CLIP already use the diffusers names).
const Leaf kUNetResnetLeaves[] = {
    {"in_layers.0", "norm1"},  {"in_layers.2", "conv1"},  {"emb_layers.1", "time_emb_proj"},
    {"out_layers.0", "norm2"}, {"out_layers.3", "conv2"}, {"skip_connection", "conv_shortcut"},
};
const Leaf kVaeResnetLeaves[] = {
    {"norm1", "norm1"}, {"conv1", "conv1"}, {"norm2", "norm2"}, {"conv2", "conv2"},
    {"nin_shortcut", "conv_shortcut"},
};
const Leaf kVaeAttentionLeaves[] = {
    {"norm", "group_norm"}, {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"proj_out", "to_out.0"},
};
// diffusers < 0.14 VAE attention names (ModelMixin._convert_deprecated_attention_blocks).
const Leaf kLegacyVaeAttention[] = {
    {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"},
};

template <size_t N>
std::optional<std::string> rename_leaf(const Leaf (&table)[N], const std::string& leaf, bool from_ldm) {
  for (const Leaf& l : table) {
    std::string from = from_ldm ? l.ldm : l.canon;
    if (leaf.size() > from.size() && leaf.compare(0, from.size(), from) == 0 && leaf[from.size()] == '.') {
      std::string rest = leaf.substr(from.size() + 1);
      if (rest == "weight" || rest == "bias") return std::string(from_ldm ? l.canon : l.ldm) + "." + rest;
    }
  }
  return std::nullopt;
}

std::string S(int v) { return std::to_string(v); }

}  // namespace

void CheckpointNames::add(const std::string& ldm, const std::string& canon, Kind kind) {
  by_ldm_[ldm] = modules_.size();
  by_canon_[canon] = modules_.size();
  modules_.push_back({ldm, canon, kind});
}

CheckpointNames::CheckpointNames(const ModelConfig& cfg) {
  // ---- UNet: openaimodel's flat input_blocks/output_blocks lists <-> diffusers' nested blocks.
  {
    const std::string L = kUNet, C = "unet.";
    const int levels = (int)cfg.unet.block_channels.size();
    const int lpb = cfg.unet.layers_per_block;
    auto attn = [&](int level) { return level < (int)cfg.unet.down_attention.size() && cfg.unet.down_attention[level]; };
    add(L + "time_embed.0", C + "time_embedding.linear_1", Kind::Plain);
    add(L + "time_embed.2", C + "time_embedding.linear_2", Kind::Plain);
    if (cfg.unet.text_time()) {  // SDXL's added conditioning
      add(L + "label_emb.0.0", C + "add_embedding.linear_1", Kind::Plain);
      add(L + "label_emb.0.2", C + "add_embedding.linear_2", Kind::Plain);
    }
    add(L + "input_blocks.0.0", C + "conv_in", Kind::Plain);
    for (int i = 0; i < levels; ++i) {
      const std::string d = C + "down_blocks." + S(i);
      for (int j = 0; j < lpb; ++j) {
        const std::string n = L + "input_blocks." + S((lpb + 1) * i + 1 + j);
        add(n + ".0", d + ".resnets." + S(j), Kind::UNetResnet);
        if (attn(i)) add(n + ".1", d + ".attentions." + S(j), Kind::Transformer);
      }
      if (i + 1 < levels)
        add(L + "input_blocks." + S((lpb + 1) * (i + 1)) + ".0.op", d + ".downsamplers.0.conv", Kind::Plain);
    }
    add(L + "middle_block.0", C + "mid_block.resnets.0", Kind::UNetResnet);
    add(L + "middle_block.1", C + "mid_block.attentions.0", Kind::Transformer);
    add(L + "middle_block.2", C + "mid_block.resnets.1", Kind::UNetResnet);
    for (int i = 0; i < levels; ++i) {  // up block i works at level levels-1-i
      const bool a = attn(levels - 1 - i);
      const std::string u = C + "up_blocks." + S(i);
      for (int j = 0; j <= lpb; ++j) {
        const std::string n = L + "output_blocks." + S((lpb + 1) * i + j);
        add(n + ".0", u + ".resnets." + S(j), Kind::UNetResnet);
        if (a) add(n + ".1", u + ".attentions." + S(j), Kind::Transformer);
        // The upsampler follows the last resnet (and its transformer, when the level has one).
        if (j == lpb && i + 1 < levels) add(n + (a ? ".2" : ".1") + ".conv", u + ".upsamplers.0.conv", Kind::Plain);
      }
    }
    add(L + "out.0", C + "conv_norm_out", Kind::Plain);
    add(L + "out.2", C + "conv_out", Kind::Plain);
  }
  // ---- VAE: LDM numbers the decoder's levels like the encoder's (up.{n-1} runs first).
  {
    const std::string L = kVae, C = "vae.";
    const int levels = (int)cfg.vae.block_channels.size();
    const int lpb = cfg.vae.layers_per_block;
    for (const char* part : {"encoder", "decoder"}) {
      const std::string l = L + part + ".", c = C + part + ".";
      add(l + "conv_in", c + "conv_in", Kind::Plain);
      add(l + "mid.block_1", c + "mid_block.resnets.0", Kind::VaeResnet);
      add(l + "mid.attn_1", c + "mid_block.attentions.0", Kind::VaeAttention);
      add(l + "mid.block_2", c + "mid_block.resnets.1", Kind::VaeResnet);
      add(l + "norm_out", c + "conv_norm_out", Kind::Plain);
      add(l + "conv_out", c + "conv_out", Kind::Plain);
    }
    for (int i = 0; i < levels; ++i) {
      const std::string e = L + "encoder.down." + S(i), ce = C + "encoder.down_blocks." + S(i);
      for (int j = 0; j < lpb; ++j) add(e + ".block." + S(j), ce + ".resnets." + S(j), Kind::VaeResnet);
      if (i + 1 < levels) add(e + ".downsample.conv", ce + ".downsamplers.0.conv", Kind::Plain);
      const std::string d = L + "decoder.up." + S(levels - 1 - i), cd = C + "decoder.up_blocks." + S(i);
      for (int j = 0; j <= lpb; ++j) add(d + ".block." + S(j), cd + ".resnets." + S(j), Kind::VaeResnet);
      if (i + 1 < levels) add(d + ".upsample.conv", cd + ".upsamplers.0.conv", Kind::Plain);
    }
    add(L + "quant_conv", C + "quant_conv", Kind::Plain);
    add(L + "post_quant_conv", C + "post_quant_conv", Kind::Plain);
  }
  // ---- CLIP: transformers' names under a prefix.
  add(cfg.sdxl() ? std::string(kSdxlClipRoot) + ".text_model" : kClip, "text_encoder.text_model", Kind::Clip);
}

std::optional<std::string> CheckpointNames::map(const std::string& name, bool from_ldm) const {
  const auto& index = from_ldm ? by_ldm_ : by_canon_;
  // The longest module path that is a dot-bounded prefix of the name.
  for (size_t dot = name.rfind('.'); dot != std::string::npos && dot > 0; dot = name.rfind('.', dot - 1)) {
    auto it = index.find(name.substr(0, dot));
    if (it == index.end()) continue;
    const Module& m = modules_[it->second];
    const std::string leaf = name.substr(dot + 1);
    std::optional<std::string> out;
    switch (m.kind) {
      case Kind::Plain:
        if (leaf == "weight" || leaf == "bias") out = leaf;
        break;
      case Kind::Transformer:
      case Kind::Clip:
        out = leaf;
        break;
      case Kind::UNetResnet: out = rename_leaf(kUNetResnetLeaves, leaf, from_ldm); break;
      case Kind::VaeResnet: out = rename_leaf(kVaeResnetLeaves, leaf, from_ldm); break;
      case Kind::VaeAttention: out = rename_leaf(kVaeAttentionLeaves, leaf, from_ldm); break;
    }
    if (!out) return std::nullopt;
    return (from_ldm ? m.canon : m.ldm) + "." + *out;
  }
  return std::nullopt;
}

std::optional<std::string> CheckpointNames::to_canonical(const std::string& ldm) const { return map(ldm, true); }
std::optional<std::string> CheckpointNames::to_ldm(const std::string& canonical) const {
  return map(canonical, false);
}

std::vector<CheckpointNames::OpenClipTensor> CheckpointNames::open_clip_tensors(int layers, int64_t hidden,
                                                                               const std::string& root,
                                                                               const std::string& component,
                                                                               bool projection) {
  const std::string L = root + ".", C = component + ".text_model.";
  std::vector<OpenClipTensor> out{{C + "embeddings.token_embedding.weight", L + "token_embedding.weight"},
                                  {C + "embeddings.position_embedding.weight", L + "positional_embedding"},
                                  {C + "final_layer_norm.weight", L + "ln_final.weight"},
                                  {C + "final_layer_norm.bias", L + "ln_final.bias"}};
  const std::pair<const char*, const char*> plain[] = {{"layer_norm1", "ln_1"},
                                                       {"layer_norm2", "ln_2"},
                                                       {"self_attn.out_proj", "attn.out_proj"},
                                                       {"mlp.fc1", "mlp.c_fc"},
                                                       {"mlp.fc2", "mlp.c_proj"}};
  if (projection) out.push_back({component + ".text_projection.weight", L + "text_projection", 0, -1, true});
  for (int i = 0; i < layers; ++i) {
    const std::string c = C + "encoder.layers." + S(i) + ".", l = L + "transformer.resblocks." + S(i) + ".";
    for (const auto& [canon, ldm] : plain)
      for (const char* leaf : {".weight", ".bias"}) out.push_back({c + canon + leaf, l + ldm + leaf});
    const char* qkv[] = {"q_proj", "k_proj", "v_proj"};
    for (int p = 0; p < 3; ++p) {
      out.push_back({c + "self_attn." + qkv[p] + ".weight", l + "attn.in_proj_weight", p * hidden, hidden});
      out.push_back({c + "self_attn." + qkv[p] + ".bias", l + "attn.in_proj_bias", p * hidden, hidden});
    }
  }
  return out;
}

bool CheckpointNames::clip_has_text_model(const std::vector<std::string>& stored, const std::string& root) {
  bool any = false;
  for (const auto& n : stored) {
    if (!starts_with(n, root + ".")) continue;
    if (starts_with(n, root + ".text_model.")) return true;
    any = true;
  }
  return !any;
}

std::string CheckpointNames::clip_add_text_model(const std::string& stored, const std::string& root) {
  if (!starts_with(stored, root + ".") || starts_with(stored, root + ".text_model.")) return stored;
  return root + ".text_model." + stored.substr(root.size() + 1);
}

std::string CheckpointNames::clip_drop_text_model(const std::string& name, const std::string& root) {
  const std::string with = root + ".text_model.";
  return starts_with(name, with) ? root + "." + name.substr(with.size()) : name;
}

// Renames the leaf of a VAE mid-block attention parameter between the legacy and current names.
static std::optional<std::string> legacy_rename(const std::string& name, bool from_legacy) {
  const std::string marker = ".mid_block.attentions.0.";
  if (name.compare(0, 4, "vae.") != 0) return std::nullopt;
  size_t at = name.find(marker);
  if (at == std::string::npos) return std::nullopt;
  auto leaf = rename_leaf(kLegacyVaeAttention, name.substr(at + marker.size()), from_legacy);
  if (!leaf) return std::nullopt;
  return name.substr(0, at + marker.size()) + *leaf;
}

std::optional<std::string> CheckpointNames::legacy_diffusers_name(const std::string& canonical) {
  return legacy_rename(canonical, false);
}
std::optional<std::string> CheckpointNames::canonical_from_legacy(const std::string& legacy) {
  return legacy_rename(legacy, true);
}

}  // namespace sdgen
