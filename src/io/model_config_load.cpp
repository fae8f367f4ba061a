// ModelConfig from diffusers config.json files, sidecar configs, or an LDM file's tensor shapes.
#include "io/model_config_load.h"
#include "core/json_unique.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "sdgen/error.h"

namespace sdgen {

using nlohmann::json;

namespace {

// Field readers: absent or null keeps the value; a present field of the wrong type is an error.
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return (it == j.end() || it->is_null()) ? nullptr : &*it;
}
// A config value for messages in %g: std::to_string's fixed 6 decimals shows 1e-7 as 0.000000.
std::string num_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
[[noreturn]] void bad(const std::string& where, const char* key, const std::string& what) {
  throw_model(where + ": field '" + key + "' " + what);
}
// An integer of int's range: JSON's 4294967360 would otherwise wrap to 64 and be taken.
int as_int(const json& v, const char* key, const std::string& where, const char* what) {
  if (!v.is_number_integer()) bad(where, key, what);
  if (v.is_number_unsigned() ? v.get<uint64_t>() > (uint64_t)INT_MAX
                             : (v.get<int64_t>() > INT_MAX || v.get<int64_t>() < INT_MIN))
    bad(where, key, v.dump() + " is out of range");
  return v.get<int>();
}
void get_int(const json& j, const char* key, int& out, const std::string& where) {
  if (const json* v = field(j, key)) out = as_int(*v, key, where, "is not an integer");
}
template <class F>
void get_float(const json& j, const char* key, F& out, const std::string& where) {
  if (const json* v = field(j, key)) {
    if (!v->is_number()) bad(where, key, "is not a number");
    const double d = v->get<double>();
    if (!std::isfinite(d) || std::fabs(d) > (double)std::numeric_limits<F>::max()) bad(where, key, v->dump() + " is out of range");
    // Below the smallest normal value the number is a denormal or rounds to 0 when stored: 1e-308
    // would read as 0, and a check on it would then quote a 0 the file never held.
    if (d != 0 && std::fabs(d) < (double)std::numeric_limits<F>::min())
      bad(where, key, v->dump() + " is below " + num_str(std::numeric_limits<F>::min()) + ", the smallest normal " +
                          (sizeof(F) == 4 ? "float" : "double") + ": stored as one it would be a denormal or 0");
    out = (F)d;
  }
}
void get_string(const json& j, const char* key, std::string& out, const std::string& where) {
  if (const json* v = field(j, key)) {
    if (!v->is_string()) bad(where, key, "is not a string");
    out = v->get<std::string>();
  }
}
void get_int_list(const json& j, const char* key, std::vector<int>& out, const std::string& where) {
  if (const json* v = field(j, key)) {
    if (!v->is_array() || v->empty()) bad(where, key, "is not a non-empty list of integers");
    std::vector<int> r;
    if (v->size() > 64) bad(where, key, "has " + std::to_string(v->size()) + " entries");
    for (const auto& e : *v) r.push_back(as_int(e, key, where, "is not a non-empty list of integers"));
    out = r;
  }
}
// An int, or a list whose entries are all equal (diffusers writes both for SD v1).
void get_uniform_int(const json& j, const char* key, int& out, const std::string& where) {
  if (const json* v = field(j, key)) {
    if (v->is_number_integer()) {
      out = as_int(*v, key, where, "is not an integer");
      return;
    }
    std::vector<int> l;
    get_int_list(j, key, l, where);
    for (int x : l)
      if (x != l[0]) bad(where, key, "differs between levels; only one value for all levels is supported");
    out = l[0];
  }
}

bool as_bool(const json& v, const char* key, const std::string& where) {
  if (!v.is_boolean()) bad(where, key, "is not true/false");
  return v.get<bool>();
}
void get_bool(const json& j, const char* key, const std::string& where) {
  if (const json* v = field(j, key)) as_bool(*v, key, where);
}
// The UNet's heads: one number for every level, or a list with one per level.
void get_heads(const json& j, const char* key, UNetConfig& c, const std::string& where) {
  const json* v = field(j, key);
  if (!v) return;
  if (v->is_number_integer()) {
    c.heads = as_int(*v, key, where, "is not an integer");
    c.level_heads.clear();
    return;
  }
  std::vector<int> l;
  get_int_list(j, key, l, where);
  c.heads = l[0];
  c.level_heads = l;
}

// Indices N of names "<prefix>N..." (the prefix ends with '.'). SD v1 counts blocks and layers in
// ones and tens; an index past kMaxBlockIndex is a damaged or hostile name table (it would make
// the name table and the loops over it as large as the number), refused naming the tensor.
constexpr int kMaxBlockIndex = 999;
std::set<int> indices(const std::vector<std::string>& names, const std::string& prefix, const std::string& where) {
  std::set<int> out;
  for (const auto& n : names) {
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    size_t i = prefix.size(), k = i;
    while (k < n.size() && isdigit((unsigned char)n[k])) ++k;
    if (k == i || (k != n.size() && n[k] != '.')) continue;
    if (k - i > 3 || std::stoi(n.substr(i, k - i)) > kMaxBlockIndex)
      throw_model(where + ": tensor '" + n + "' has block index " + n.substr(i, std::min<size_t>(k - i, 24)) +
                  " (more than " + std::to_string(kMaxBlockIndex + 1) + " blocks); is this an SD v1 checkpoint?");
    out.insert(std::stoi(n.substr(i, k - i)));
  }
  return out;
}

bool any_with_prefix(const std::vector<std::string>& names, const std::string& prefix) {
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& n) { return n.compare(0, prefix.size(), prefix) == 0; });
}

}  // namespace

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw_model("cannot read " + path);
  json j;
  std::string duplicate;
  try {
    j = parse_json_unique_keys(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), &duplicate);
  } catch (const json::exception& e) {
    throw_model(path + " is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) throw_model(path + ": key \"" + duplicate + "\" is given twice");
  return j;
}

void apply_unet_json(const json& j, UNetConfig& c, const std::string& where) {
  if (!j.is_object()) throw_model(where + ": UNet config is not a JSON object");
  get_int(j, "in_channels", c.in_channels, where);
  get_int(j, "out_channels", c.out_channels, where);
  get_int_list(j, "block_out_channels", c.block_channels, where);
  if (const json* v = field(j, "down_block_types")) {
    if (!v->is_array()) bad(where, "down_block_types", "is not a list");
    c.down_attention.clear();
    for (const auto& t : *v) {
      std::string s = t.is_string() ? t.get<std::string>() : "";
      if (s == "CrossAttnDownBlock2D") c.down_attention.push_back(true);
      else if (s == "DownBlock2D") c.down_attention.push_back(false);
      else bad(where, "down_block_types", "holds '" + t.dump() + "'; SD v1 uses CrossAttnDownBlock2D and DownBlock2D");
    }
  }
  get_uniform_int(j, "layers_per_block", c.layers_per_block, where);
  // SD v1 and 2.x configs name the head count attention_head_dim (a historical misnomer), one number
  // or one per level (SD 2.x: [5, 10, 20, 20]); newer ones may set num_attention_heads, which then wins.
  get_heads(j, "attention_head_dim", c, where);
  get_heads(j, "num_attention_heads", c, where);
  get_uniform_int(j, "cross_attention_dim", c.cross_attention_dim, where);
  // SD 2.x's linear proj_in/proj_out: the loader takes either stored shape (unet/blocks.h).
  get_bool(j, "use_linear_projection", where);
  if (const json* v = field(j, "upcast_attention")) c.upcast_attention = as_bool(*v, "upcast_attention", where);
  // SDXL's added conditioning (pooled text and size ids); other extra conditioning inputs (SD 2
  // unCLIP's image embedding, the x4 upscaler's noise level) are named, not ignored.
  if (const json* v = field(j, "addition_embed_type")) {
    if (*v != "text_time")
      bad(where, "addition_embed_type", v->dump() + " is not \"text_time\" (SDXL's; other added conditioning is not run)");
    get_int(j, "addition_time_embed_dim", c.addition_time_embed_dim, where);
    get_int(j, "projection_class_embeddings_input_dim", c.addition_embed_input_dim, where);
    if (c.addition_time_embed_dim <= 0 || c.addition_time_embed_dim % 2 || c.addition_embed_input_dim <= 0)
      bad(where, "addition_time_embed_dim", "must be positive and even, with projection_class_embeddings_input_dim "
                                            "positive, for addition_embed_type \"text_time\"");
  }
  for (const char* key : {"class_embed_type", "num_class_embeds"})
    if (const json* v = field(j, key))
      throw_model(where + ": " + key + " " + v->dump() + ": the UNet takes an extra conditioning input (" +
                  (std::string(key) == "class_embed_type" ? "an image embedding, as SD 2 unCLIP"
                                                          : "a class label, as the SD x4 upscaler's noise level") +
                  "), which sd-gen does not run");
  get_int(j, "norm_num_groups", c.norm_groups, where);
  get_float(j, "norm_eps", c.norm_eps, where);
  // Transformer blocks per attention: one number, or one per level (SDXL: 1, 2, 10).
  if (const json* v = field(j, "transformer_layers_per_block")) {
    if (v->is_number_integer()) {
      c.level_depth.assign(c.block_channels.size(), as_int(*v, "transformer_layers_per_block", where, "is not an integer"));
    } else {
      get_int_list(j, "transformer_layers_per_block", c.level_depth, where);
      for (const auto& e : *v)
        if (!e.is_number_integer()) bad(where, "transformer_layers_per_block", "is not a list of integers (nested lists are not run)");
    }
  }
  if (const json* v = field(j, "reverse_transformer_layers_per_block"))
    bad(where, "reverse_transformer_layers_per_block", v->dump() + " is set: up blocks deeper than their down blocks are not run");
}

bool apply_tokenizer_json(const json& j, TokenizerConfig& c, const std::string& where) {
  if (!j.is_object()) throw_model(where + ": tokenizer config is not a JSON object");
  const json* v = field(j, "pad_token");
  if (!v) return false;
  // A string, or transformers' AddedToken form {"content": "!", ...}.
  const json* content = v->is_object() ? field(*v, "content") : v;
  if (!content || !content->is_string() || content->get<std::string>().empty())
    bad(where, "pad_token", v->dump() + " is not a token");
  c.pad_token = content->get<std::string>();
  c.pad_special = true;
  return true;
}

void apply_vae_json(const json& j, VaeConfig& c, const std::string& where) {
  if (!j.is_object()) throw_model(where + ": VAE config is not a JSON object");
  get_int(j, "latent_channels", c.latent_channels, where);
  get_int(j, "in_channels", c.in_channels, where);
  get_int(j, "out_channels", c.out_channels, where);
  get_int_list(j, "block_out_channels", c.block_channels, where);
  get_int(j, "layers_per_block", c.layers_per_block, where);
  get_int(j, "norm_num_groups", c.norm_groups, where);
  get_float(j, "scaling_factor", c.scaling_factor, where);
  if (const json* v = field(j, "force_upcast")) c.force_upcast = as_bool(*v, "force_upcast", where);
}

void apply_clip_json(const json& j, ClipConfig& c, const std::string& where, bool with_projection) {
  if (!j.is_object()) throw_model(where + ": text encoder config is not a JSON object");
  get_int(j, "vocab_size", c.vocab_size, where);
  get_int(j, "max_position_embeddings", c.max_positions, where);
  get_int(j, "hidden_size", c.hidden, where);
  get_int(j, "num_hidden_layers", c.layers, where);
  get_int(j, "num_attention_heads", c.heads, where);
  get_int(j, "intermediate_size", c.intermediate, where);
  get_string(j, "hidden_act", c.act, where);
  get_float(j, "layer_norm_eps", c.eps, where);
  // Read for CLIPTextModelWithProjection only (the caller says which): CLIPTextModel configs carry an
  // unused projection_dim too.
  if (with_projection) get_int(j, "projection_dim", c.projection_dim, where);
  get_int(j, "eos_token_id", c.eos_token_id, where);
}

void apply_scheduler_json(const json& j, SchedulerConfig& c, const std::string& where) {
  if (!j.is_object()) throw_model(where + ": scheduler config is not a JSON object");
  get_int(j, "num_train_timesteps", c.train_timesteps, where);
  get_float(j, "beta_start", c.beta_start, where);
  get_float(j, "beta_end", c.beta_end, where);
  get_string(j, "beta_schedule", c.beta_schedule, where);
  // An explicit beta list replaces beta_schedule in diffusers; sd-gen computes the schedule, so a
  // list would be ignored: refused instead of giving other images than the model's.
  if (const json* v = field(j, "trained_betas"); v && !v->is_null())
    bad(where, "trained_betas", "is set; sd-gen computes betas from beta_schedule and cannot take a list");
  get_int(j, "steps_offset", c.steps_offset, where);
  if (const json* v = field(j, "set_alpha_to_one")) {
    if (!v->is_boolean()) bad(where, "set_alpha_to_one", "is not true/false");
    c.set_alpha_to_one = v->get<bool>();
  }
  get_string(j, "timestep_spacing", c.timestep_spacing, where);
  get_string(j, "prediction_type", c.prediction_type, where);
  if (const json* v = field(j, "rescale_betas_zero_snr")) c.rescale_betas_zero_snr = as_bool(*v, "rescale_betas_zero_snr", where);
  if (!c.timestep_spacing.empty() && c.timestep_spacing != "linspace" && c.timestep_spacing != "leading" &&
      c.timestep_spacing != "trailing")
    bad(where, "timestep_spacing", "'" + c.timestep_spacing + "' is not linspace, leading or trailing");
  // Values the sampler indexes with or takes logs and roots of: out of range they read past the
  // schedule (a negative steps_offset), ask for gigabytes (a huge num_train_timesteps) or give
  // NaN latents and a black image (betas outside (0, 1)). 100,000 is 100× any trained schedule.
  if (c.train_timesteps < 2 || c.train_timesteps > 100000)
    bad(where, "num_train_timesteps", std::to_string(c.train_timesteps) + " is outside 2..100000");
  if (c.steps_offset < 0 || c.steps_offset >= c.train_timesteps)
    bad(where, "steps_offset",
        std::to_string(c.steps_offset) + " is outside 0.." + std::to_string(c.train_timesteps - 1));
  if (!(c.beta_start > 0.0f && c.beta_start <= c.beta_end && c.beta_end < 1.0f))
    bad(where, "beta_start/beta_end",
        num_str(c.beta_start) + " / " + num_str(c.beta_end) + " must satisfy 0 < start <= end < 1");
}

void apply_sdgen_config_json(const json& j, ModelConfig& cfg, const std::string& where) {
  if (!j.is_object()) throw_model(where + ": sdgen_config is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string w = where + " [" + it.key() + "]";
    if (it.key() == "unet") apply_unet_json(*it, cfg.unet, w);
    else if (it.key() == "vae") apply_vae_json(*it, cfg.vae, w);
    else if (it.key() == "text_encoder") apply_clip_json(*it, cfg.clip, w);
    else if (it.key() == "text_encoder_2" && cfg.sdxl()) apply_clip_json(*it, cfg.clip2, w, true);
    else if (it.key() == "scheduler") apply_scheduler_json(*it, cfg.scheduler, w);
    else throw_model(where + ": unknown sdgen_config section '" + it.key() +
                     "' (expected unet, vae, text_encoder, text_encoder_2 (SDXL), scheduler)");
  }
}

namespace {

// Shape lookups for inference; errors name the source and the tensor.
struct Shapes {
  const std::vector<std::string>& names;
  const ShapeOf& shape_of;
  const std::string& where;

  // A required tensor's shape, with at least `rank` dims.
  Shape need(const std::string& name, size_t rank) const {
    std::optional<Shape> s = shape_of(name);
    if (!s) throw_model(where + ": tensor '" + name + "' not found; is this an SD v1 checkpoint?");
    if (s->size() < rank)
      throw_model(where + ": tensor '" + name + "' has shape " + shape_str(*s) + ", expected " +
                  std::to_string(rank) + " dimensions");
    return *s;
  }
  // 1 + the largest N of "<prefix>N.*"; an error naming `what` when there is none.
  int count(const std::string& prefix, const char* what) const {
    std::set<int> ids = indices(names, prefix, where);
    if (ids.empty()) throw_model(where + ": no " + what + " (" + prefix + "*) found; is this an SD v1 checkpoint?");
    return *ids.rbegin() + 1;
  }
  // The context width: any cross-attention key projection's input dimension under `prefix`.
  int cross_attention_dim(const std::string& prefix) const {
    const std::string to_k = "attn2.to_k.weight";
    for (const auto& n : names)
      if (n.compare(0, prefix.size(), prefix) == 0 && n.size() > to_k.size() &&
          n.compare(n.size() - to_k.size(), to_k.size(), to_k) == 0)
        return (int)need(n, 2)[1];
    throw_model(where + ": no UNet cross-attention (" + prefix + "*." + to_k + ") found; is this an SD v1 checkpoint?");
  }
  // transformers' CLIPTextModel names below `prefix` ("...text_model.").
  void clip(const std::string& prefix, ClipConfig& c) const {
    Shape tok = need(prefix + "embeddings.token_embedding.weight", 2);
    c.vocab_size = (int)tok[0];
    c.hidden = (int)tok[1];
    c.max_positions = (int)need(prefix + "embeddings.position_embedding.weight", 2)[0];
    c.layers = count(prefix + "encoder.layers.", "CLIP layers");
    c.intermediate = (int)need(prefix + "encoder.layers.0.mlp.fc1.weight", 2)[0];
    c.heads = std::max(1, c.hidden / 64);  // ViT-L/14's head width
  }
  // OpenCLIP's text tower below `prefix` ("cond_stage_model.model."), as SD 2.x files store it. SD 2
  // runs it to the penultimate block (LDM's FrozenOpenCLIPEmbedder, layer "penultimate"): the last
  // block is stored and never run.
  // SDXL's bigG (all_blocks) runs every block: its pooled output is the last block's.
  void open_clip(const std::string& prefix, ClipConfig& c, bool all_blocks = false) const {
    Shape tok = need(prefix + "token_embedding.weight", 2);
    c.vocab_size = (int)tok[0];
    c.hidden = (int)tok[1];
    c.max_positions = (int)need(prefix + "positional_embedding", 2)[0];
    c.layers = count(prefix + "transformer.resblocks.", "OpenCLIP blocks") - (all_blocks ? 0 : 1);
    if (c.layers < 1) throw_model(where + ": the OpenCLIP text encoder has one block; SD 2 runs all but the last");
    c.intermediate = (int)need(prefix + "transformer.resblocks.0.mlp.c_fc.weight", 2)[0];
    c.heads = std::max(1, c.hidden / 64);  // ViT-H/14's head width
    c.act = "gelu";
  }
};

}  // namespace

ModelConfig infer_ldm_config(const std::vector<std::string>& names, const ShapeOf& shape_of,
                             const std::string& where) {
  ModelConfig cfg;
  const Shapes sh{names, shape_of, where};
  const std::string U = "model.diffusion_model.", V = "first_stage_model.decoder.";

  // ---- UNet: input_blocks = conv_in, then per level lpb resnets (+ a downsampler but the last).
  {
    UNetConfig& u = cfg.unet;
    u.in_channels = (int)sh.need(U + "input_blocks.0.0.weight", 4)[1];
    u.out_channels = (int)sh.need(U + "out.2.weight", 4)[0];
    const int n_in = sh.count(U + "input_blocks.", "UNet input blocks");
    int downs = 0;
    for (int b = 0; b < n_in; ++b)
      if (shape_of(U + "input_blocks." + std::to_string(b) + ".0.op.weight")) ++downs;
    const int levels = downs + 1;
    if (n_in < 2 || (n_in - 1 - downs) % levels != 0)
      throw_model(where + ": UNet input_blocks (" + std::to_string(n_in) + " with " + std::to_string(downs) +
                  " downsamplers) do not form levels of equal depth");
    u.layers_per_block = (n_in - 1 - downs) / levels;
    u.block_channels.assign(levels, 0);
    u.down_attention.assign(levels, false);
    for (int i = 0; i < levels; ++i) {
      const std::string b = U + "input_blocks." + std::to_string((u.layers_per_block + 1) * i + 1);
      u.block_channels[i] = (int)sh.need(b + ".0.out_layers.3.weight", 1)[0];
      u.down_attention[i] = any_with_prefix(names, b + ".1.");
    }
    u.cross_attention_dim = sh.cross_attention_dim(U);
  }
  // ---- VAE decoder: up.N.block.J, N = encoder level; the decoder has one resnet more per level.
  {
    VaeConfig& v = cfg.vae;
    v.latent_channels = (int)sh.need(V + "conv_in.weight", 4)[1];
    v.out_channels = (int)sh.need(V + "conv_out.weight", 4)[0];
    // The encoder's input channels where it is stored (a decoder-only file keeps the default 3).
    if (std::optional<Shape> e = sh.shape_of("first_stage_model.encoder.conv_in.weight"); e && e->size() == 4)
      v.in_channels = (int)(*e)[1];
    const int levels = sh.count(V + "up.", "VAE decoder blocks");
    v.layers_per_block = sh.count(V + "up.0.block.", "VAE decoder resnets") - 1;
    v.block_channels.assign(levels, 0);
    for (int i = 0; i < levels; ++i)
      v.block_channels[i] = (int)sh.need(V + "up." + std::to_string(i) + ".block.0.conv2.weight", 1)[0];
  }
  {  // Transformer blocks per attention level (SDXL: 2 and 10); the mid block's must be the last level's.
    UNetConfig& u = cfg.unet;
    std::vector<int> depth(u.block_channels.size(), 1);
    for (size_t i = 0; i < depth.size(); ++i)
      if (u.down_attention[i]) {
        const std::string b = U + "input_blocks." + std::to_string((u.layers_per_block + 1) * (int)i + 1) + ".1.";
        depth[i] = sh.count(b + "transformer_blocks.", "transformer blocks");
      }
    if (std::any_of(depth.begin(), depth.end(), [](int d) { return d != 1; })) u.level_depth = depth;
  }
  if (any_with_prefix(names, "conditioner.embedders.")) {
    // SDXL base (model_family.cpp refused the rest): CLIP ViT-L and OpenCLIP bigG, both to their
    // penultimate layer, bigG's pooled and projected end token with the six size ids as label_emb's input.
    sh.clip("conditioner.embedders.0.transformer.text_model.", cfg.clip);
    cfg.clip.penultimate = true;
    const std::string G = "conditioner.embedders.1.model.";
    cfg.clip2 = ClipConfig();
    sh.open_clip(G, cfg.clip2, /*all_blocks=*/true);
    cfg.clip2.penultimate = true;
    cfg.clip2.projection_dim = (int)sh.need(G + "text_projection", 2)[1];
    cfg.tokenizer2.pad_token = "!";
    UNetConfig& u = cfg.unet;
    for (int ch : u.block_channels) u.level_heads.push_back(std::max(1, ch / 64));
    u.heads = u.level_heads[0];
    u.addition_embed_input_dim = (int)sh.need(U + "label_emb.0.0.weight", 2)[1];
    u.addition_time_embed_dim = (u.addition_embed_input_dim - cfg.clip2.projection_dim) / 6;
    cfg.vae.scaling_factor = 0.13025f;
    cfg.vae.force_upcast = true;
    cfg.scheduler.timestep_spacing = "leading";
    cfg.force_zeros_for_empty_prompt = true;
  } else if (any_with_prefix(names, "cond_stage_model.model.")) {
    // SD 2.x: OpenCLIP ViT-H, 64-wide heads at every level (num_head_channels 64), "!" padding.
    sh.open_clip("cond_stage_model.model.", cfg.clip);
    for (int ch : cfg.unet.block_channels) cfg.unet.level_heads.push_back(std::max(1, ch / 64));
    cfg.unet.heads = cfg.unet.level_heads[0];
    cfg.tokenizer.pad_token = "!";
  } else {
    sh.clip("cond_stage_model.transformer.text_model.", cfg.clip);
  }
  return cfg;
}

ModelConfig infer_diffusers_config(const std::vector<std::string>& names, const ShapeOf& shape_of,
                                   const std::string& where) {
  ModelConfig cfg;
  const Shapes sh{names, shape_of, where};
  {
    UNetConfig& u = cfg.unet;
    const std::string U = "unet.";
    u.in_channels = (int)sh.need(U + "conv_in.weight", 4)[1];
    u.out_channels = (int)sh.need(U + "conv_out.weight", 4)[0];
    const int levels = sh.count(U + "down_blocks.", "UNet down blocks");
    u.layers_per_block = sh.count(U + "down_blocks.0.resnets.", "UNet resnets");
    u.block_channels.assign(levels, 0);
    u.down_attention.assign(levels, false);
    for (int i = 0; i < levels; ++i) {
      const std::string b = U + "down_blocks." + std::to_string(i);
      u.block_channels[i] = (int)sh.need(b + ".resnets.0.conv2.weight", 1)[0];
      u.down_attention[i] = any_with_prefix(names, b + ".attentions.");
    }
    u.cross_attention_dim = sh.cross_attention_dim(U);
  }
  {
    VaeConfig& v = cfg.vae;
    const std::string V = "vae.decoder.";
    v.latent_channels = (int)sh.need(V + "conv_in.weight", 4)[1];
    v.out_channels = (int)sh.need(V + "conv_out.weight", 4)[0];
    if (std::optional<Shape> e = sh.shape_of("vae.encoder.conv_in.weight"); e && e->size() == 4)
      v.in_channels = (int)(*e)[1];
    const int levels = sh.count(V + "up_blocks.", "VAE decoder blocks");
    v.layers_per_block = sh.count(V + "up_blocks.0.resnets.", "VAE decoder resnets") - 1;
    v.block_channels.assign(levels, 0);
    for (int i = 0; i < levels; ++i)  // up block i runs at encoder level levels-1-i
      v.block_channels[levels - 1 - i] =
          (int)sh.need(V + "up_blocks." + std::to_string(i) + ".resnets.0.conv2.weight", 1)[0];
  }
  sh.clip("text_encoder.text_model.", cfg.clip);
  return cfg;
}

namespace {
// SDXL's parts fit together: a UNet with added conditioning has the second encoder (and only then),
// its context is both encoders' widths, its add_embedding input the pooled width and six size ids.
template <class Fail>
void validate_sdxl(const ModelConfig& cfg, const Fail& fail) {
  const UNetConfig& u = cfg.unet;
  if (!u.text_time()) {
    if (cfg.sdxl()) fail("a second text encoder (text_encoder_2) beside a UNet without SDXL's added conditioning");
    return;
  }
  if (!cfg.sdxl() || cfg.clip2.projection_dim <= 0)
    fail("the UNet takes SDXL's added conditioning (addition_embed_type text_time) but there is no second text "
         "encoder with a projection (text_encoder_2)");
  if (u.cross_attention_dim != cfg.clip.hidden + cfg.clip2.hidden)
    fail("unet cross_attention_dim " + std::to_string(u.cross_attention_dim) + " is not the two text encoders' " +
         std::to_string(cfg.clip.hidden) + " + " + std::to_string(cfg.clip2.hidden));
  if (u.addition_embed_input_dim != cfg.clip2.projection_dim + 6 * u.addition_time_embed_dim)
    fail("unet projection_class_embeddings_input_dim " + std::to_string(u.addition_embed_input_dim) +
         " is not the pooled text width " + std::to_string(cfg.clip2.projection_dim) + " + 6 size ids × " +
         std::to_string(u.addition_time_embed_dim) + " (a refiner's 5 ids with an aesthetic score are not run)");
  const ClipConfig& c = cfg.clip2;
  if (c.heads < 1 || c.hidden % c.heads != 0 || (c.act != "gelu" && c.act != "quick_gelu") || c.layers > 256 ||
      c.hidden > (1 << 14) || c.intermediate < 1 || c.intermediate > (1 << 16) || c.vocab_size < 1 ||
      c.vocab_size > (1 << 22) || c.max_positions < 1 || c.max_positions > (1 << 16) || c.projection_dim > (1 << 14) ||
      !(c.eps > 0.0f && c.eps < 1.0f))
    fail("text_encoder_2's sizes (hidden " + std::to_string(c.hidden) + ", heads " + std::to_string(c.heads) +
         ", layers " + std::to_string(c.layers) + ", act " + c.act + ") do not form a CLIP text encoder");
}
}  // namespace

void validate_model_config(const ModelConfig& cfg, const std::string& where) {
  auto fail = [&](const std::string& m) {
    throw_model(where + ": " + m + " (a model of other than SD v1 size needs its config: a sidecar for a single "
                "file, config.json files in a diffusers folder; see weights/README.md)");
  };
  // Bounds far past any SD v1 derivative: beyond them a config is damaged or hostile, and the
  // name table, the loops and the allocations it drives would grow with the number.
  constexpr int kMaxLevels = 8, kMaxLayersPerBlock = 64, kMaxWidth = 1 << 14, kMaxClipLayers = 256;
  auto in = [&](const char* what, int v, int lo, int hi) {
    if (v < lo || v > hi)
      fail(std::string(what) + " " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  };
  auto eps_ok = [&](const char* what, float eps) {
    if (!(eps > 0.0f && eps < 1.0f)) fail(std::string(what) + " " + num_str(eps) + " must be in (0, 1)");
  };
  const UNetConfig& u = cfg.unet;
  if (u.block_channels.empty()) fail("unet block_out_channels is empty");
  in("unet levels (block_out_channels)", (int)u.block_channels.size(), 1, kMaxLevels);
  in("unet layers_per_block", u.layers_per_block, 1, kMaxLayersPerBlock);
  in("unet in_channels", u.in_channels, 1, kMaxWidth);
  in("unet out_channels", u.out_channels, 1, kMaxWidth);
  in("unet cross_attention_dim", u.cross_attention_dim, 1, kMaxWidth);
  for (int ch : u.block_channels) in("unet width", ch, 1, kMaxWidth);
  eps_ok("unet norm_eps", u.norm_eps);
  eps_ok("unet transformer norm eps", u.transformer_norm_eps);
  if (u.down_attention.size() != u.block_channels.size())
    fail("unet has " + std::to_string(u.block_channels.size()) + " levels but " +
         std::to_string(u.down_attention.size()) + " down_block_types");
  if (u.layers_per_block < 1) fail("unet layers_per_block < 1");
  if (u.norm_groups < 1) fail("unet norm_num_groups must be positive");
  if (!u.level_heads.empty() && u.level_heads.size() != u.block_channels.size())
    fail("unet has " + std::to_string(u.block_channels.size()) + " levels but " +
         std::to_string(u.level_heads.size()) + " head counts");
  for (size_t i = 0; i < u.block_channels.size(); ++i) {
    int ch = u.block_channels[i];
    if (ch < 1 || ch % u.norm_groups != 0)
      fail("unet width " + std::to_string(ch) + " is not a multiple of norm_num_groups " + std::to_string(u.norm_groups));
    const int heads = u.heads_at(i);
    if (heads < 1) fail("unet head count " + std::to_string(heads) + " must be positive");
    if ((u.down_attention[i] || i + 1 == u.block_channels.size()) && ch % heads != 0)
      fail("unet width " + std::to_string(ch) + " is not a multiple of the head count " + std::to_string(heads));
  }
  if (!u.level_depth.empty() && u.level_depth.size() != u.block_channels.size())
    fail("unet has " + std::to_string(u.block_channels.size()) + " levels but " +
         std::to_string(u.level_depth.size()) + " transformer_layers_per_block");
  for (int d : u.level_depth) in("unet transformer_layers_per_block", d, 1, kMaxLayersPerBlock);
  validate_sdxl(cfg, fail);
  const VaeConfig& v = cfg.vae;
  if (v.block_channels.empty() || v.layers_per_block < 1) fail("vae needs at least one level and one resnet per level");
  in("vae levels (block_out_channels)", (int)v.block_channels.size(), 1, kMaxLevels);
  in("vae layers_per_block", v.layers_per_block, 1, kMaxLayersPerBlock);
  in("vae latent_channels", v.latent_channels, 1, kMaxWidth);
  in("vae in_channels", v.in_channels, 1, kMaxWidth);
  in("vae out_channels", v.out_channels, 1, kMaxWidth);
  for (int ch : v.block_channels) in("vae width", ch, 1, kMaxWidth);
  eps_ok("vae norm_eps", v.norm_eps);
  // The latents are divided by it before decoding: zero gives infinities, a negative value a
  // silently wrong image.
  if (!(v.scaling_factor > 0.0f) || !std::isfinite(v.scaling_factor))
    fail("vae scaling_factor " + num_str(v.scaling_factor) + " must be positive");
  for (int ch : v.block_channels)
    if (v.norm_groups < 1 || ch < 1 || ch % v.norm_groups != 0)
      fail("vae width " + std::to_string(ch) + " is not a multiple of norm_num_groups " + std::to_string(v.norm_groups));
  const ClipConfig& c = cfg.clip;
  if (c.heads < 1 || c.hidden % c.heads != 0)
    fail("text encoder hidden_size " + std::to_string(c.hidden) + " is not a multiple of num_attention_heads " +
         std::to_string(c.heads));
  if (c.act != "quick_gelu" && c.act != "gelu")
    fail("text encoder hidden_act '" + c.act + "' is not supported (quick_gelu or gelu)");
  if (c.layers < 1 || c.vocab_size < 1 || c.max_positions < 1) fail("text encoder sizes must be positive");
  in("text encoder num_hidden_layers", c.layers, 1, kMaxClipLayers);
  in("text encoder hidden_size", c.hidden, 1, kMaxWidth);
  in("text encoder intermediate_size", c.intermediate, 1, 4 * kMaxWidth);
  in("text encoder vocab_size", c.vocab_size, 1, 1 << 22);
  in("text encoder max_position_embeddings", c.max_positions, 1, 1 << 16);  // >= 77: ClipTextEncoder
  eps_ok("text encoder layer_norm_eps", c.eps);
}

}  // namespace sdgen
