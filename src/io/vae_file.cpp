#include "io/vae_file.h"

#include <cstdio>
#include <filesystem>
#include <map>

#include "io/checkpoint_names.h"
#include "io/model_config_load.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "sdgen/error.h"

namespace sdgen {

namespace fs = std::filesystem;

namespace {

Shape strip_trailing_ones(Shape s) {
  while (!s.empty() && s.back() == 1) s.pop_back();
  return s;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// The tensors kept: the decoder's, which every VAE file must have, and the encoder's where the file
// has them (indexed only: read when an encoder is asked for, ModelOptions::need_encoder).
bool is_decoder(const std::string& c) { return starts_with(c, "vae.decoder.") || starts_with(c, "vae.post_quant_conv."); }
bool is_encoder(const std::string& c) { return starts_with(c, "vae.encoder.") || starts_with(c, "vae.quant_conv."); }

// The VAE tensors of one safetensors file under canonical names; everything else refused.
class VaeCheckpoint : public Checkpoint {
 public:
  VaeCheckpoint(std::string path, std::unique_ptr<SafetensorsFile> file, ModelConfig cfg)
      : path_(std::move(path)), file_(std::move(file)), config_(std::move(cfg)) {}
  void add(const std::string& canonical, const StTensorInfo* t) {
    entries_[canonical] = t;
    decoder_tensors_ += is_decoder(canonical);
  }
  size_t decoder_tensors() const { return decoder_tensors_; }

  const ModelConfig& config() const override { return config_; }
  std::string name() const override { return fs::path(path_).filename().string(); }
  bool has(const std::string& n) const override { return entries_.count(n) != 0; }
  std::optional<Shape> stored_shape(const std::string& n) const override {
    auto it = entries_.find(n);
    return it == entries_.end() ? std::nullopt : std::optional<Shape>(it->second->shape);
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }
  Tensor get(const std::string& n, const Shape& expected) const override {
    const StTensorInfo& t = entry(n, expected);
    Tensor out = Tensor::empty(expected);
    file_->to_floats(t, out.f32());
    return out;
  }
  Tensor get_stored(const std::string& n, const Shape& expected, DType dtype) const override {
    const StTensorInfo& t = entry(n, expected);
    const StDType want = dtype == DType::F16 ? StDType::F16 : dtype == DType::BF16 ? StDType::BF16 : StDType::F32;
    if (t.dtype != want) return get(n, expected);
    Tensor out = Tensor::empty(expected, dtype);
    file_->copy_bytes(t, out.data());
    return out;
  }

 private:
  const StTensorInfo& entry(const std::string& n, const Shape& expected) const {
    auto it = entries_.find(n);
    if (it == entries_.end()) throw_model("--vae " + path_ + ": tensor '" + n + "' not found");
    const StTensorInfo& t = *it->second;
    if (strip_trailing_ones(t.shape) != strip_trailing_ones(expected))
      throw_model("--vae " + path_ + ": tensor '" + printable_tensor_name(t.name) + "' has shape " +
                  shape_str(t.shape) + ", expected " + shape_str(expected) +
                  " (a VAE of another architecture than the model's?)");
    return t;
  }
  std::string path_;
  std::unique_ptr<SafetensorsFile> file_;
  ModelConfig config_;
  std::map<std::string, const StTensorInfo*> entries_;
  size_t decoder_tensors_ = 0;
};

std::unique_ptr<SafetensorsFile> open_st(const std::string& path) {
  try {
    return open_weights_file(path);  // .safetensors or torch.save's zip (.ckpt/.pt/.bin)
  } catch (const Error& err) {
    throw_model("--vae " + path + ": " + err.what());
  }
}

std::string num_text(float v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

}  // namespace

VaeFile open_vae_file(const std::string& path, const ModelConfig& base) {
  std::error_code ec;
  VaeFile out;
  ModelConfig cfg = base;
  out.name = fs::path(path).filename().string();
  if (out.name.empty()) out.name = fs::path(path).parent_path().filename().string();
  if (fs::is_directory(path, ec)) {
    fs::path dir = path;
    if (!fs::exists(dir / "config.json") && fs::exists(dir / "vae" / "config.json")) dir /= "vae";
    if (!fs::exists(dir / "config.json"))
      throw_model("--vae " + path + ": a folder without config.json, so not a diffusers VAE folder");
    apply_vae_json(read_json_file((dir / "config.json").string()), cfg.vae, (dir / "config.json").string());
    validate_model_config(cfg, path);
    // The scaling factor belongs to the latent space a VAE was trained on (SD v1/2 0.18215, SDXL
    // 0.13025): another one decodes another family's latents, as noise-like colour blotches.
    if (cfg.vae.scaling_factor != base.vae.scaling_factor)
      throw_model("--vae " + path + ": its scaling factor " + num_text(cfg.vae.scaling_factor) + " is not the model's " +
                  num_text(base.vae.scaling_factor) + ": it was trained on another model family's latents (" +
                  (cfg.vae.scaling_factor == 0.18215f ? "SD v1/2" : cfg.vae.scaling_factor == 0.13025f ? "SDXL" : "not SD") +
                  ")");
    std::string file;
    for (const char* stem : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                             "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"})
      if (fs::exists(dir / stem)) {
        file = (dir / stem).string();
        break;
      }
    if (file.empty())
      throw_model("--vae " + path + ": no diffusion_pytorch_model.safetensors (or .bin) in " + dir.string());
    auto f = open_st(file);
    const SafetensorsFile* raw = f.get();
    auto ck = std::make_unique<VaeCheckpoint>(file, std::move(f), cfg);
    for (const StTensorInfo& t : raw->tensors()) {
      std::string canon = "vae." + t.name;
      if (auto renamed = CheckpointNames::canonical_from_legacy(canon)) canon = *renamed;
      if (is_decoder(canon) || is_encoder(canon)) ck->add(canon, &t);
    }
    if (ck->decoder_tensors() == 0) throw_model("--vae " + path + ": no decoder.* tensors in " + file);
    out.weights = std::move(ck);
  } else if (fs::is_regular_file(path, ec)) {
    auto f = open_st(path);
    const SafetensorsFile* raw = f.get();
    auto ck = std::make_unique<VaeCheckpoint>(path, std::move(f), cfg);
    const CheckpointNames names(cfg);
    // A diffusers AutoencoderKL's own file (its folder's diffusion_pytorch_model.safetensors, passed
    // alone) has "decoder.up_blocks.*"; LDM names have "decoder.up.*".
    bool diffusers_names = false;
    for (const StTensorInfo& t : raw->tensors())
      if (starts_with(t.name, "decoder.up_blocks.") || starts_with(t.name, "decoder.mid_block.")) diffusers_names = true;
    for (const StTensorInfo& t : raw->tensors()) {
      if (!st_dtype_is_float(t.dtype)) continue;
      std::optional<std::string> canon;
      if (diffusers_names) {
        canon = "vae." + t.name;
        if (auto renamed = CheckpointNames::canonical_from_legacy(*canon)) canon = *renamed;
      } else {
        canon = names.to_canonical(starts_with(t.name, "first_stage_model.") ? t.name : "first_stage_model." + t.name);
      }
      if (canon && (is_decoder(*canon) || is_encoder(*canon))) ck->add(*canon, &t);
    }
    if (ck->decoder_tensors() == 0)
      throw_model("--vae " + path + ": no VAE decoder tensors (LDM decoder.* or first_stage_model.decoder.*, or "
                  "diffusers decoder.up_blocks.*)");
    out.weights = std::move(ck);
  } else {
    throw_model("--vae " + path + ": no such file or folder");
  }
  out.config = cfg.vae;
  return out;
}

}  // namespace sdgen
