// Checkpoint::open: an LDM single .safetensors file or a diffusers folder, both served under the
// canonical (diffusers, component-prefixed) names.
#include "io/checkpoint.h"

#include "io/random_checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

#include "io/checkpoint_names.h"
#include "io/model_config_load.h"
#include "io/safetensors.h"
#include "io/model_family.h"
#include "io/torch_checkpoint.h"
#include "sdgen/error.h"

namespace sdgen {

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
std::string basename_of(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
Shape strip_trailing_ones(Shape s) {
  while (!s.empty() && s.back() == 1) s.pop_back();
  return s;
}

class StoredCheckpoint : public Checkpoint {
 public:
  const ModelConfig& config() const override { return config_; }
  std::string name() const override { return name_; }
  bool has(const std::string& n) const override {
    auto it = entries_.find(n);
    return it != entries_.end() && st_dtype_is_float(it->second.info->dtype);
  }
  std::optional<Shape> stored_shape(const std::string& n) const override {
    if (!has(n)) return std::nullopt;
    return entries_.at(n).shape();
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [n, e] : entries_)
      if (st_dtype_is_float(e.info->dtype)) out.push_back(n);
    return out;
  }
  Tensor get(const std::string& n, const Shape& expected) const override {
    const Entry& e = entry(n, expected);
    Tensor t = Tensor::empty(expected);
    if (e.transpose) {
      std::vector<float> all((size_t)e.info->numel());
      e.file->to_floats(*e.info, all.data());
      const int64_t r = e.info->shape[0], c = e.info->shape[1];
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < c; ++j) t.f32()[j * r + i] = all[(size_t)(i * c + j)];
    } else if (e.rows < 0) {
      e.file->to_floats(*e.info, t.f32());  // throws for integer dtypes, naming them
    } else {
      std::vector<float> all((size_t)e.info->numel());
      e.file->to_floats(*e.info, all.data());
      std::copy_n(all.begin() + (ptrdiff_t)(e.row0 * e.row_elements()), t.numel(), t.f32());
    }
    return t;
  }
  Tensor get_stored(const std::string& n, const Shape& expected, DType dtype) const override {
    const Entry& e = entry(n, expected);
    const StDType want = dtype == DType::F16 ? StDType::F16 : dtype == DType::BF16 ? StDType::BF16 : StDType::F32;
    if (e.info->dtype != want || e.transpose) return get(n, expected);
    Tensor t = Tensor::empty(expected, dtype);
    if (e.rows < 0) {
      e.file->copy_bytes(*e.info, t.data());
    } else {
      std::vector<uint8_t> all(e.info->end - e.info->begin);
      e.file->copy_bytes(*e.info, all.data());
      const size_t row_bytes = all.size() / (size_t)e.info->shape[0];
      std::memcpy(t.data(), all.data() + e.row0 * row_bytes, (size_t)e.rows * row_bytes);
    }
    return t;
  }
  std::optional<std::string> tokenizer_vocab_json() const override { return vocab_; }
  std::optional<std::string> tokenizer_merges_txt() const override { return merges_; }
  std::optional<std::string> tokenizer_json() const override { return tokenizer_json_; }

 protected:
  struct Entry {
    const SafetensorsFile* file;
    const StTensorInfo* info;
    // A block of rows of the stored tensor (OpenCLIP's packed q/k/v), or rows -1: all of it.
    int64_t row0 = 0, rows = -1;
    // The transpose of a stored 2-D tensor (OpenCLIP's text_projection, applied as x @ P).
    bool transpose = false;
    Shape shape() const {
      Shape s = info->shape;
      if (rows >= 0) s[0] = rows;
      if (transpose && s.size() == 2) std::swap(s[0], s[1]);
      return s;
    }
    int64_t row_elements() const {
      int64_t n = 1;
      for (size_t i = 1; i < info->shape.size(); ++i) n *= info->shape[i];
      return n;
    }
  };
  // The entry of `n`, checked against the expected shape.
  const Entry& entry(const std::string& n, const Shape& expected) const {
    auto it = entries_.find(n);
    if (it == entries_.end()) {
      throw_model("checkpoint " + path_ + ": tensor '" + n + "' not found" + where_missing(n));
    }
    const Entry& e = it->second;
    const std::string stored = e.info->name != n ? " (stored as '" + printable_tensor_name(e.info->name) + "')" : "";
    if (strip_trailing_ones(e.shape()) != strip_trailing_ones(expected))
      throw_model("checkpoint " + path_ + ": tensor '" + n + "'" + stored + " has shape " +
                  shape_str(e.shape()) + ", expected " + shape_str(expected));
    return e;
  }

  // What the error for a missing tensor adds: the stored name looked for, and where.
  virtual std::string where_missing(const std::string& canonical) const { return ""; }

  std::string path_, name_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
  std::optional<std::string> vocab_, merges_, tokenizer_json_;
};

// ---- LDM single file.
class LdmCheckpoint : public StoredCheckpoint {
 public:
  LdmCheckpoint(const std::string& path, const OpenOptions& options) {
    path_ = path;
    name_ = basename_of(path);
    for (const char* ext : {".safetensors", ".ckpt", ".pt", ".bin"})
      if (ends_with(name_, ext)) {
        name_.resize(name_.size() - strlen(ext));
        break;
      }
    files_.push_back(open_weights_file(path));
    const SafetensorsFile& f = *files_[0];

    std::vector<std::string> stored;
    bool unet = false, diffusers_like = false;
    for (const auto& t : f.tensors()) {
      stored.push_back(t.name);
      if (t.name.compare(0, 22, "model.diffusion_model.") == 0) unet = true;
      if (t.name.compare(0, 12, "down_blocks.") == 0 || t.name.compare(0, 11, "text_model.") == 0 ||
          t.name.compare(0, 11, "embeddings.") == 0 || t.name.compare(0, 8, "decoder.") == 0)
        diffusers_like = true;
    }
    if (!unet)
      throw_model(path + ": no model.diffusion_model.* tensors, so not an SD v1 LDM checkpoint" +
                  std::string(diffusers_like ? "; it looks like one component of a diffusers folder: pass the "
                                               "folder (with model_index.json) instead"
                                             : ""));

    // The text encoder with or without "text_model." (checkpoint_names.h); from here on every
    // name has it, so the one name table and the shape inference serve both forms.
    const std::string root = CheckpointNames::kLdmClipRoot;
    clip_flat_ = !CheckpointNames::clip_has_text_model(stored, root);
    std::map<std::string, const StTensorInfo*> by_name;
    for (const auto& t : f.tensors()) by_name[clip_flat_ ? CheckpointNames::clip_add_text_model(t.name, root) : t.name] = &t;
    std::vector<std::string> all;
    for (const auto& kv : by_name) all.push_back(kv.first);
    auto shape_of = [&](const std::string& n) -> std::optional<Shape> {
      auto it = by_name.find(n);
      return it != by_name.end() ? std::optional<Shape>(it->second->shape) : std::nullopt;
    };
    reject_other_ldm_families(all, shape_of, path);
    try {
      config_ = infer_ldm_config(all, shape_of, path);
    } catch (const Error& e) {
      if (!clip_flat_) throw;
      // Name a missing text-encoder tensor as this file would store it.
      std::string msg = e.what();
      const std::string with = root + ".text_model.";
      for (size_t at; (at = msg.find(with)) != std::string::npos;) msg.replace(at, with.size(), root + ".");
      throw_model(msg);
    }
    // Overrides for what shapes cannot tell: the file's own metadata, then a sidecar file.
    auto md = f.metadata().find("sdgen_config");
    if (md != f.metadata().end()) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(md->second);
      } catch (const nlohmann::json::exception& e) {
        throw_model(path + ": __metadata__ sdgen_config is not valid JSON: " + e.what());
      }
      apply_sdgen_config_json(j, config_, path + " __metadata__ sdgen_config");
    }
    const std::string sidecar = path + ".json";
    if (is_file(sidecar)) apply_sdgen_config_json(read_json_file(sidecar), config_, sidecar);
    reject_other_families(config_, config_.scheduler.prediction_type, path);
    validate_model_config(config_, path);

    ldm_names_.emplace(config_);
    for (const auto& [n, t] : by_name)
      if (auto canon = ldm_names_->to_canonical(n)) entries_[*canon] = Entry{&f, t};
    std::vector<CheckpointNames::OpenClipTensor> open_clip;
    if (shape_of(std::string(CheckpointNames::kLdmOpenClipRoot) + ".token_embedding.weight"))
      open_clip = CheckpointNames::open_clip_tensors(config_.clip.layers, config_.clip.hidden);
    if (config_.sdxl())
      open_clip = CheckpointNames::open_clip_tensors(config_.clip2.layers, config_.clip2.hidden,
                                                     CheckpointNames::kSdxlOpenClipRoot, "text_encoder_2", true);
    {
      for (const auto& o : open_clip) {
        open_clip_[o.canonical] = o.stored;
        auto it = by_name.find(o.stored);
        if (it == by_name.end()) continue;
        // A packed projection must hold q, k and v whole: its rows are split by the hidden width.
        if (o.rows >= 0 && (it->second->shape.empty() || it->second->shape[0] != 3 * o.rows))
          throw_model(path + ": tensor '" + o.stored + "' has shape " + shape_str(it->second->shape) +
                      ", expected " + std::to_string(3 * o.rows) + " rows (q, k and v of width " +
                      std::to_string(o.rows) + ")");
        entries_[o.canonical] = Entry{&f, it->second, o.row0, o.rows, o.transpose};
      }
    }
    if (options.ema) use_ema_unet(by_name, f, path);
  }

 private:
  // LitEma keeps "model_ema." + the DiffusionWrapper's parameter name with its dots removed
  // ("model_ema.diffusion_modelinput_blocks00weight"). Every UNet tensor must have its copy.
  void use_ema_unet(const std::map<std::string, const StTensorInfo*>& by_name, const SafetensorsFile& f,
                    const std::string& path) {
    const std::string unet = "model.diffusion_model.";
    int swapped = 0;
    for (const auto& [n, t] : by_name) {
      if (n.compare(0, unet.size(), unet) != 0) continue;
      auto canon = ldm_names_->to_canonical(n);
      if (!canon) continue;
      std::string ema = "model_ema.";
      for (char c : n.substr(strlen("model."))) if (c != '.') ema += c;
      auto e = by_name.find(ema);
      if (e == by_name.end()) {
        if (swapped == 0 && std::none_of(by_name.begin(), by_name.end(), [](const auto& kv) {
              return kv.first.compare(0, 10, "model_ema.") == 0 && kv.first != "model_ema.decay" &&
                     kv.first != "model_ema.num_updates";
            }))
          throw_model(path + ": --ema asked for, but the file has no EMA weights (model_ema.*); it is "
                      "probably already an EMA-only file (\"emaonly\"): leave --ema out");
        throw_model(path + ": --ema: the EMA copy of '" + n + "' ('" + ema + "') is missing");
      }
      if (e->second->shape != t->shape)
        throw_model(path + ": --ema: '" + ema + "' has shape " + shape_str(e->second->shape) + ", '" + n + "' " +
                    shape_str(t->shape));
      entries_[*canon] = Entry{&f, e->second};
      ++swapped;
    }
  }

  std::string where_missing(const std::string& canonical) const override {
    if (auto o = open_clip_.find(canonical); o != open_clip_.end())
      return " (looked for the OpenCLIP name '" + o->second + "')";
    auto ldm = ldm_names_->to_ldm(canonical);
    if (!ldm) return " (no LDM name corresponds to it)";
    if (clip_flat_) ldm = CheckpointNames::clip_drop_text_model(*ldm, CheckpointNames::kLdmClipRoot);
    return " (looked for the LDM name '" + *ldm + "')";
  }
  std::optional<CheckpointNames> ldm_names_;
  std::map<std::string, std::string> open_clip_;  // SD 2.x: canonical -> stored OpenCLIP name
  bool clip_flat_ = false;  // the text encoder is stored without "text_model."
};

// ---- diffusers folder.
namespace {
// "1000 timesteps, scaled_linear betas 0.00085..0.012, steps_offset 1"
std::string describe(const SchedulerConfig& s) {
  char betas[64];
  std::snprintf(betas, sizeof betas, "%g..%g", s.beta_start, s.beta_end);
  return std::to_string(s.train_timesteps) + " timesteps, " + s.beta_schedule + " betas " + betas + ", steps_offset " +
         std::to_string(s.steps_offset);
}
}  // namespace

class DiffusersCheckpoint : public StoredCheckpoint {
 public:
  explicit DiffusersCheckpoint(const std::string& dir) {
    path_ = dir;
    name_ = basename_of(dir);
    const std::string root = ends_with(dir, "/") ? dir : dir + "/";
    if (!is_file(root + "model_index.json"))
      throw_model(dir + " is a folder without model_index.json, so not a diffusers pipeline folder");
    const nlohmann::json index = read_json_file(root + "model_index.json");
    const bool index_object = index.is_object();
    // SDXL: a second text encoder and tokenizer; the refiner (text_encoder_2 alone, an aesthetic score
    // among the size ids) is named, not run.
    const bool second = is_dir(root + "text_encoder_2") || (index_object && index.contains("text_encoder_2") &&
                                                            !index["text_encoder_2"].is_null() &&
                                                            index["text_encoder_2"] != nlohmann::json::array({nullptr, nullptr}));
    const bool first = is_dir(root + "text_encoder") || !second;
    if (second && (!first || (index_object && index.value("requires_aesthetics_score", false))))
      throw_model(dir + " is an SDXL refiner (" +
                  std::string(!first ? "text_encoder_2 without text_encoder" : "requires_aesthetics_score") +
                  "); sd-gen runs SDXL base models, not the refiner");
    if (index_object && index.contains("force_zeros_for_empty_prompt") && index["force_zeros_for_empty_prompt"].is_boolean())
      config_.force_zeros_for_empty_prompt = index["force_zeros_for_empty_prompt"].get<bool>();

    add_component(root, "unet", "diffusion_pytorch_model");
    add_component(root, "vae", "diffusion_pytorch_model");
    add_component(root, "text_encoder", "model");
    if (second) {
      if (!is_dir(root + "text_encoder_2"))
        throw_model("diffusers folder " + root + ": model_index.json lists text_encoder_2 but the folder has none");
      add_component(root, "text_encoder_2", "model");
    }

    // Each component's config.json; a component without one is inferred from its shapes.
    const std::string unet_cfg = root + "unet/config.json", vae_cfg = root + "vae/config.json",
                      clip_cfg = root + "text_encoder/config.json";
    for (const std::string& cfg : {unet_cfg, vae_cfg, clip_cfg})
      if (!is_file(cfg))
        notes_.push_back("warning: " + dir + ": no " + cfg.substr(root.size()) +
                         "; its architecture is inferred from the tensor shapes (attention heads as SD v1)");
    if (!notes_.empty()) {
      std::vector<std::string> all = names();
      ModelConfig inferred = infer_diffusers_config(all, [&](const std::string& n) { return stored_shape(n); }, dir);
      config_.unet = inferred.unet;
      config_.vae = inferred.vae;
      config_.clip = inferred.clip;
    }
    if (is_file(unet_cfg)) apply_unet_json(read_json_file(unet_cfg), config_.unet, unet_cfg);
    if (is_file(vae_cfg)) apply_vae_json(read_json_file(vae_cfg), config_.vae, vae_cfg);
    if (is_file(clip_cfg)) apply_clip_json(read_json_file(clip_cfg), config_.clip, clip_cfg);
    if (second) read_second_encoder(root);
    const std::string sched = root + "scheduler/scheduler_config.json";
    if (is_file(sched))
      apply_scheduler_json(read_json_file(sched), config_.scheduler, sched);
    else
      notes_.push_back("warning: " + dir + ": no scheduler/scheduler_config.json; sampling with SD v1's training schedule (" +
                       describe(config_.scheduler) + ")");
    reject_other_families(config_, config_.scheduler.prediction_type, dir);
    validate_model_config(config_, dir);
    // transformers 4 writes vocab.json + merges.txt (and maybe tokenizer.json); transformers 5
    // only tokenizer.json. The pair wins when both exist: it is what the older loaders read.
    if (is_file(root + "tokenizer/vocab.json") && is_file(root + "tokenizer/merges.txt")) {
      vocab_ = root + "tokenizer/vocab.json";
      merges_ = root + "tokenizer/merges.txt";
    } else if (is_file(root + "tokenizer/tokenizer.json")) {
      tokenizer_json_ = root + "tokenizer/tokenizer.json";
    }
    // The padding after the end token (SD 2.x: "!"); transformers 5 writes only tokenizer_config.json.
    for (const char* f : {"tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"})
      if (is_file(root + f) && apply_tokenizer_json(read_json_file(root + f), config_.tokenizer, root + f)) break;
  }

  std::vector<std::string> notes() const override { return notes_; }

 private:
  std::vector<std::string> notes_;

  // SDXL: text_encoder_2 (CLIPTextModelWithProjection) from its config.json, tokenizer_2's padding;
  // both encoders' contexts are their penultimate layers.
  void read_second_encoder(const std::string& root) {
    const std::string cfg = root + "text_encoder_2/config.json";
    config_.clip2 = ClipConfig();
    apply_clip_json(read_json_file(cfg), config_.clip2, cfg, /*with_projection=*/true);
    if (config_.clip2.projection_dim <= 0 || !has("text_encoder_2.text_projection.weight"))
      throw_model(cfg + ": the second text encoder has no text projection (projection_dim and "
                  "text_projection.weight), which SDXL's pooled embedding needs");
    config_.clip.penultimate = config_.clip2.penultimate = true;
    config_.tokenizer2 = TokenizerConfig();
    for (const char* f : {"tokenizer_2/tokenizer_config.json", "tokenizer_2/special_tokens_map.json"})
      if (is_file(root + f) && apply_tokenizer_json(read_json_file(root + f), config_.tokenizer2, root + f)) break;
  }

  void add_component(const std::string& root, const std::string& comp, const std::string& stem) {
    const std::string base = root + comp + "/" + stem;
    // safetensors first; else the .bin that older diffusers and transformers wrote (torch.save's
    // zip, read by the restricted unpickler; transformers names it pytorch_model.bin).
    const std::string bin = root + comp + "/" + (stem == "model" ? std::string("pytorch_model") : stem);
    std::string file;
    for (const std::string& candidate : {base + ".safetensors", base + ".fp16.safetensors", bin + ".bin", bin + ".fp16.bin"})
      if (is_file(candidate)) {
        file = candidate;
        break;
      }
    if (file.empty())
      throw_model("diffusers folder " + root + ": missing " + base + ".safetensors (or " + stem +
                  ".fp16.safetensors, or the older " + bin.substr(bin.rfind('/') + 1) + ".bin)");
    files_.push_back(ends_with(file, ".bin") ? open_torch_checkpoint(file) : SafetensorsFile::open(file));
    const SafetensorsFile& f = *files_.back();
    std::vector<std::string> stored;
    for (const auto& t : f.tensors()) stored.push_back(comp + "." + t.name);
    // transformers 5 saves CLIPTextModel without "text_model." (checkpoint_names.h).
    const bool flat = comp == CheckpointNames::kDiffusersClipRoot &&
                      !CheckpointNames::clip_has_text_model(stored, CheckpointNames::kDiffusersClipRoot);
    for (const auto& t : f.tensors()) {
      std::string canon = comp + "." + t.name;
      if (flat) canon = CheckpointNames::clip_add_text_model(canon, comp);
      if (auto renamed = CheckpointNames::canonical_from_legacy(canon)) canon = *renamed;
      entries_[canon] = Entry{&f, &t};
    }
    components_[comp] = {file, flat};
  }

  std::string where_missing(const std::string& canonical) const override {
    const size_t dot = canonical.find('.');
    auto it = components_.find(canonical.substr(0, dot));
    if (dot == std::string::npos || it == components_.end()) return "";
    std::string stored = canonical.substr(dot + 1);
    if (it->second.second) stored = CheckpointNames::clip_drop_text_model(canonical, it->first).substr(dot + 1);
    return " (looked for '" + stored + "' in " + it->second.first + ")";
  }
  std::map<std::string, std::pair<std::string, bool>> components_;  // component -> (file, text encoder flat)
};

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& path, const OpenOptions& options) {
  // Full-size SD v1.5 shapes with random weights: benchmarks and the census need no download.
  if (path == kRandomSd15) return make_random_checkpoint(ModelConfig{});
  if (path == kRandomSd21) return make_random_checkpoint(sd21_config());
  if (path == kRandomSdxl) return make_random_checkpoint(sdxl_config());
  if (path == kRandomSd15Inpainting) {
    ModelConfig c;
    c.unet.in_channels = 9;
    return make_random_checkpoint(c);
  }
  if (is_dir(path)) {
    if (options.ema)
      throw_model(path + ": --ema applies to single files with EMA copies; a diffusers folder holds one UNet");
    return std::make_unique<DiffusersCheckpoint>(path);
  }
  if (is_file(path)) return std::make_unique<LdmCheckpoint>(path, options);
  throw_model("model not found: " + path + " is neither a .safetensors file nor a diffusers folder");
}

}  // namespace sdgen
