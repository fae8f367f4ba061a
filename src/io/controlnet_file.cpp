// Opening a ControlNet (io/controlnet_file.h): either naming mapped to canonical names, the
// architecture taken from the model's UNet and the hint encoder's shapes.
#include "io/controlnet_file.h"

#include <filesystem>
#include <functional>

#include "io/checkpoint_names.h"
#include "io/mapped_checkpoint.h"
#include "io/model_config_load.h"
#include "io/random_checkpoint.h"
#include "io/torch_checkpoint.h"
#include "sdgen/error.h"

namespace sdgen {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::unique_ptr<SafetensorsFile> open_file(const std::string& shown, const std::string& path) {
  try {
    return open_weights_file(path);
  } catch (const Error& err) {
    throw_model("--control " + shown + ": " + err.what());
  }
}

// The original name of a hint-encoder conv, "input_hint_block.K.<leaf>" with K = 0, 2, ..., last:
// conv_in, blocks.(K/2 − 1), conv_out.
std::optional<std::string> hint_name(const std::string& rest, int last) {
  const size_t dot = rest.find('.');
  if (dot == std::string::npos) return std::nullopt;
  int k = 0;
  try {
    k = std::stoi(rest.substr(0, dot));
  } catch (...) {
    return std::nullopt;
  }
  if (k % 2) return std::nullopt;
  const std::string leaf = rest.substr(dot + 1);
  const std::string root = "controlnet.controlnet_cond_embedding.";
  if (k == 0) return root + "conv_in." + leaf;
  if (k == last) return root + "conv_out." + leaf;
  return root + "blocks." + std::to_string(k / 2 - 1) + "." + leaf;
}

// Adds a file's float tensors under canonical names; returns how many.
size_t add_file(MappedCheckpoint& ck, const SafetensorsFile* f, const ModelConfig& base) {
  // The original names under "control_model." (the released .pth), or bare (A1111's extracted files).
  std::string orig = "control_model.";
  bool prefixed = false, bare = false;
  for (const StTensorInfo& t : f->tensors()) {
    prefixed |= starts_with(t.name, orig);
    bare |= starts_with(t.name, "input_hint_block.");
  }
  if (!prefixed && bare) orig.clear();
  int last_hint = 0;
  for (const StTensorInfo& t : f->tensors())
    if (starts_with(t.name, orig + "input_hint_block.")) {
      const std::string rest = t.name.substr(orig.size() + 17);
      last_hint = std::max(last_hint, std::atoi(rest.c_str()));
    }
  const CheckpointNames names(base);
  size_t added = 0;
  for (const StTensorInfo& t : f->tensors()) {
    if (!st_dtype_is_float(t.dtype)) continue;
    std::optional<std::string> canon;
    if ((prefixed || bare) && starts_with(t.name, orig) &&
        !starts_with(t.name, "controlnet_") && !starts_with(t.name, "conv_in.")) {
      const std::string rest = t.name.substr(orig.size());
      if (starts_with(rest, "input_hint_block.")) {
        canon = hint_name(rest.substr(17), last_hint);
      } else if (starts_with(rest, "zero_convs.")) {
        const size_t dot = rest.find('.', 11);
        if (dot != std::string::npos && rest.compare(dot, 3, ".0.") == 0)
          canon = "controlnet.controlnet_down_blocks." + rest.substr(11, dot - 11) + "." + rest.substr(dot + 3);
      } else if (starts_with(rest, "middle_block_out.0.")) {
        canon = "controlnet.controlnet_mid_block." + rest.substr(19);
      } else if (auto c = names.to_canonical("model.diffusion_model." + rest); c && starts_with(*c, "unet.")) {
        canon = "controlnet." + c->substr(5);
      }
    } else if (starts_with(t.name, "conv_in.") || starts_with(t.name, "time_embedding.") ||
               starts_with(t.name, "add_embedding.") || starts_with(t.name, "controlnet_") ||
               starts_with(t.name, "down_blocks.") || starts_with(t.name, "mid_block.")) {
      canon = "controlnet." + t.name;
    }
    if (!canon) continue;
    ck.add(*canon, &t, f);
    ++added;
  }
  return added;
}

std::string weights_in(const fs::path& dir, const std::string& path) {
  for (const char* stem : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                           "diffusion_pytorch_model.bin"})
    if (fs::exists(dir / stem)) return (dir / stem).string();
  throw_model("--control " + path + ": no diffusion_pytorch_model.safetensors in " + dir.string());
}

// A folder's config.json over the model's UNet: it must describe the same encoder.
void apply_folder_config(const fs::path& json_path, const std::string& path, ControlNetConfig& c) {
  const nlohmann::json j = read_json_file(json_path.string());
  UNetConfig u = c.unet;
  u.addition_time_embed_dim = u.addition_embed_input_dim = 0;  // SDXL's only where the config says so
  apply_unet_json(j, u, json_path.string());
  if (u.block_channels != c.unet.block_channels || u.layers_per_block != c.unet.layers_per_block ||
      u.down_attention != c.unet.down_attention || u.cross_attention_dim != c.unet.cross_attention_dim ||
      u.addition_time_embed_dim != c.unet.addition_time_embed_dim ||
      u.addition_embed_input_dim != c.unet.addition_embed_input_dim)
    throw_model("--control " + path + ": a ControlNet for another UNet than the model's (block_out_channels, "
                "layers_per_block, down_block_types, cross_attention_dim or addition_embed_type differ)");
  c.unet = u;
  c.unet.in_channels = 4;
  if (j.value("global_pool_conditions", false))
    throw_model("--control " + path + ": global_pool_conditions (the shuffle ControlNet) is not supported");
  if (j.value("controlnet_conditioning_channel_order", std::string("rgb")) != "rgb")
    throw_model("--control " + path + ": controlnet_conditioning_channel_order " +
                j["controlnet_conditioning_channel_order"].get<std::string>() + " is not supported (rgb only)");
}

// The hint encoder's channels from its convs' shapes: conv_in [c0, in, 3, 3], blocks.(2i+1) [c(i+1), ...].
void read_hint_shapes(const Checkpoint& ck, ControlNetConfig& c, const std::string& path) {
  const std::string root = "controlnet.controlnet_cond_embedding.";
  const std::optional<Shape> in = ck.stored_shape(root + "conv_in.weight");
  if (!in || in->size() != 4)
    throw_model("--control " + path + ": no hint encoder (controlnet_cond_embedding.conv_in / input_hint_block.0)");
  c.conditioning_channels = (int)(*in)[1];
  c.conditioning_embedding_channels = {(int)(*in)[0]};
  for (int i = 1;; i += 2) {
    const std::optional<Shape> s = ck.stored_shape(root + "blocks." + std::to_string(i) + ".weight");
    if (!s || s->size() != 4) break;
    c.conditioning_embedding_channels.push_back((int)(*s)[0]);
  }
}

}  // namespace

ControlNetFile open_controlnet_file(const std::string& path, const ModelConfig& base) {
  std::error_code ec;
  ControlNetFile out;
  out.config.unet = base.unet;
  out.config.unet.in_channels = 4;  // also beside a 9-channel inpainting UNet: it reads the latents alone
  if (path.rfind(kRandomControlNet, 0) == 0) {
    out.weights = make_random_checkpoint(base, std::hash<std::string>{}(path));
    out.name = path;
    return out;
  }
  auto ck = std::make_unique<MappedCheckpoint>("--control", path, base);
  size_t added = 0;
  if (fs::is_directory(path, ec)) {
    const fs::path dir = path;
    if (!fs::exists(dir / "config.json"))
      throw_model("--control " + path + ": a folder without config.json, so not a diffusers ControlNetModel folder");
    apply_folder_config(dir / "config.json", path, out.config);
    const std::string file = weights_in(dir, path);
    added = add_file(*ck, ck->keep(open_file(path, file)), base);
  } else if (fs::is_regular_file(path, ec)) {
    added = add_file(*ck, ck->keep(open_file(path, path)), base);
  } else {
    throw_model("--control " + path + ": no such file or folder");
  }
  if (added == 0)
    throw_model("--control " + path + ": no ControlNet tensors (diffusers controlnet_cond_embedding.*, "
                "controlnet_down_blocks.*, or the original control_model.*)");
  read_hint_shapes(*ck, out.config, path);
  out.name = ck->name();
  out.weights = std::move(ck);
  return out;
}

}  // namespace sdgen
