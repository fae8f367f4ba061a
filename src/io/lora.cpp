#include "io/lora.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "io/checkpoint_names.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "core/decimal.h"
#include "sdgen/error.h"

namespace sdgen {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// One delta: factor · up [out, r] · down [r, rest].
struct Delta {
  std::vector<float> up, down;
  int64_t out = 0, rank = 0, rest = 0;
  float factor = 1.0f;
};

class LoraCheckpoint : public Checkpoint {
 public:
  LoraCheckpoint(const Checkpoint& base, std::map<std::string, std::vector<Delta>> deltas)
      : base_(base), deltas_(std::move(deltas)) {}
  const ModelConfig& config() const override { return base_.config(); }
  std::string name() const override { return base_.name(); }
  bool has(const std::string& n) const override { return base_.has(n); }
  std::optional<Shape> stored_shape(const std::string& n) const override { return base_.stored_shape(n); }
  std::vector<std::string> names() const override { return base_.names(); }
  std::optional<std::string> tokenizer_vocab_json() const override { return base_.tokenizer_vocab_json(); }
  std::optional<std::string> tokenizer_merges_txt() const override { return base_.tokenizer_merges_txt(); }
  std::optional<std::string> tokenizer_json() const override { return base_.tokenizer_json(); }

  Tensor get(const std::string& n, const Shape& expected) const override {
    Tensor t = base_.get(n, expected);
    auto it = deltas_.find(n);
    if (it == deltas_.end()) return t;
    const int64_t total = numel_of(expected);
    for (const Delta& d : it->second) {
      SDGEN_CHECK(d.out * d.rest == total, "LoRA delta of " + n + " does not fit its weight");
      // W [out, rest] += factor · up [out, r] · down [r, rest], in fp32 (then cast to the model's precision).
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d.out, (int)d.rest, (int)d.rank, d.factor,
                  d.up.data(), (int)d.rank, d.down.data(), (int)d.rest, 1.0f, t.f32(), (int)d.rest);
    }
    return t;
  }
  Tensor get_stored(const std::string& n, const Shape& expected, DType dtype) const override {
    if (deltas_.count(n)) return get(n, expected);  // merged in fp32, converted by the loader
    return base_.get_stored(n, expected, dtype);
  }

 private:
  const Checkpoint& base_;
  std::map<std::string, std::vector<Delta>> deltas_;
};

std::unique_ptr<SafetensorsFile> open_lora(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw_model("--lora " + path + ": no such file");
  try {
    return open_weights_file(path);  // .safetensors or torch.save's zip (.ckpt/.pt/.bin)
  } catch (const Error& err) {
    throw_model("--lora " + path + ": " + err.what());
  }
}

std::string underscored(std::string s) {
  for (char& c : s)
    if (c == '.') c = '_';
  return s;
}

std::string number_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// component -> (lora_alpha, r) of diffusers' PEFT metadata. r is the divisor of every factor of
// that component and alpha its numerator: an r of 0 or either one non-finite would turn every
// merged weight into inf or NaN, which later reads as a damaged model, so they are refused here.
std::map<std::string, std::pair<double, double>> read_peft_config(
    const SafetensorsFile& f, const std::string& what, const std::function<void(const std::string&)>& warn) {
  std::map<std::string, std::pair<double, double>> out;
  auto md = f.metadata().find("lora_adapter_metadata");
  if (md == f.metadata().end()) return out;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(md->second);
  } catch (const nlohmann::json::exception& e) {
    throw_model(what + ": lora_adapter_metadata is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw_model(what + ": lora_adapter_metadata is not a JSON object");
  for (const std::string c : {"unet", "text_encoder", "text_encoder_2"}) {
    const std::string ka = c + ".lora_alpha", kr = c + ".r";
    if (j.contains(ka) && j.contains(kr) && j[ka].is_number() && j[kr].is_number()) {
      const double alpha = j[ka].get<double>(), r = j[kr].get<double>();
      if (!(r > 0) || !std::isfinite(r))
        throw_model(what + ": lora_adapter_metadata " + kr + " is " + number_str(r) + "; the rank must be positive");
      if (!std::isfinite(alpha)) throw_model(what + ": lora_adapter_metadata " + ka + " is not a finite number");
      out[c] = {alpha, r};
    }
    for (const char* pat : {".alpha_pattern", ".rank_pattern"})
      if (j.contains(c + pat) && j[c + pat].is_object() && !j[c + pat].empty() && warn)
        warn("warning: " + what + ": " + c + pat + " (per-module alpha or rank) is not supported; ignored");
  }
  return out;
}

// The factors as floats, refused when one value is NaN or infinite: merged, it would make the
// model's weight non-finite, and the damage would be blamed on the model.
std::vector<float> finite_factor(const SafetensorsFile& f, const StTensorInfo& t, const std::string& what) {
  std::vector<float> v = f.to_floats(t);
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw_model(what + ": tensor '" + printable_tensor_name(t.name) + "' holds " +
                  (std::isnan(v[i]) ? "NaN" : "an infinity") + " (element " + std::to_string(i) +
                  "); a LoRA's factors and alpha must be finite");
  return v;
}

// Bounds |factor · up · down| elementwise: past float's range the merge would give inf.
bool delta_fits_float(const std::vector<float>& up, const std::vector<float>& down, int64_t rank, float factor) {
  float mu = 0, md = 0;
  for (float x : up) mu = std::max(mu, std::fabs(x));
  for (float x : down) md = std::max(md, std::fabs(x));
  return (double)std::fabs(factor) * (double)rank * mu * md <= (double)std::numeric_limits<float>::max();
}

}  // namespace

std::unique_ptr<Checkpoint> apply_loras(const Checkpoint& base, const std::vector<LoraSpec>& loras,
                                        const std::function<void(const std::string&)>& warn) {
  // kohya module name -> canonical weight name, for every UNet and text-encoder weight of the model.
  // SDXL's (sd-scripts' SDXL networks): the UNet also under its original (sgm) module paths, the
  // encoders as lora_te1_ / lora_te2_.
  const bool sdxl = base.config().sdxl();
  const CheckpointNames ldm(base.config());
  std::map<std::string, std::string> kohya;
  for (const std::string& n : base.names()) {
    if (!ends_with(n, ".weight")) continue;
    const std::string module = n.substr(0, n.size() - 7);
    if (starts_with(module, "unet.")) {
      kohya["lora_unet_" + underscored(module.substr(5))] = n;
      const std::string prefix = "model.diffusion_model.";
      if (const auto l = ldm.to_ldm(n); sdxl && l && starts_with(*l, prefix) && ends_with(*l, ".weight"))
        kohya["lora_unet_" + underscored(l->substr(prefix.size(), l->size() - prefix.size() - 7))] = n;
    }
    for (const auto& [component, tag] : {std::pair<std::string, std::string>{"text_encoder.", sdxl ? "lora_te1_" : "lora_te_"},
                                         {"text_encoder_2.", "lora_te2_"}})
      if (starts_with(module, component + "text_model.")) {
        kohya[tag + underscored(module.substr(component.size()))] = n;
        kohya[tag + underscored(module.substr(component.size() + 11))] = n;  // made from a transformers 5 module
      }
    if (module == "text_encoder_2.text_projection") kohya["lora_te2_text_projection"] = n;
  }
  std::map<std::string, std::vector<Delta>> deltas;
  for (const LoraSpec& spec : loras) {
    const std::string what = "--lora " + spec.file;
    auto f = open_lora(spec.file);
    const auto peft_alpha_rank = read_peft_config(*f, what, warn);
    // Pair the factors: module key -> (down, up, alpha, canonical weight).
    struct Pair {
      const StTensorInfo *down = nullptr, *up = nullptr, *alpha = nullptr;
      std::string canonical, component;
    };
    std::map<std::string, Pair> pairs;
    std::vector<std::string> unmatched;
    for (const StTensorInfo& t : f->tensors()) {
      const std::string& k = t.name;
      std::string module, part;
      for (const char* suffix : {".lora_down.weight", ".lora_up.weight", ".alpha", ".lora_A.weight", ".lora_B.weight"})
        if (ends_with(k, suffix)) {
          module = k.substr(0, k.size() - std::string(suffix).size());
          part = suffix;
          break;
        }
      Pair* p = nullptr;
      if (!module.empty()) {
        if (starts_with(module, "lora_unet_") || starts_with(module, "lora_te_") || starts_with(module, "lora_te1_") ||
            starts_with(module, "lora_te2_")) {
          auto it = kohya.find(module);
          if (it != kohya.end()) {
            p = &pairs[module];
            p->canonical = it->second;
            p->component = "kohya";
          }
        } else if (starts_with(module, "unet.") || starts_with(module, "text_encoder.") ||
                   starts_with(module, "text_encoder_2.")) {
          std::string m = module;
          if (starts_with(m, "text_encoder.")) m = CheckpointNames::clip_add_text_model(m, "text_encoder");
          if (base.has(m + ".weight")) {
            p = &pairs[module];
            p->canonical = m + ".weight";
            p->component = m.substr(0, m.find('.'));
          }
        }
      }
      if (!p) {
        unmatched.push_back(printable_tensor_name(k));
        continue;
      }
      if (part == ".lora_down.weight" || part == ".lora_A.weight") p->down = &t;
      else if (part == ".lora_up.weight" || part == ".lora_B.weight") p->up = &t;
      else p->alpha = &t;
    }
    int used = 0;
    for (auto& [module, p] : pairs) {
      if (!p.down || !p.up) {
        unmatched.push_back(printable_tensor_name(module) + (p.down ? " (no up factor)" : " (no down factor)"));
        continue;
      }
      const Shape ws = *base.stored_shape(p.canonical);
      const Shape& ds = p.down->shape;
      const Shape& us = p.up->shape;
      const int64_t out = ws[0], rest = numel_of(ws) / ws[0];
      const int64_t rank = ds.empty() ? 0 : ds[0];
      const bool fits = rank > 0 && numel_of(ds) == rank * rest && us.size() >= 2 && us[0] == out &&
                        numel_of(us) == out * rank && (ds.size() == 2 || ds.size() == ws.size());
      if (!fits)
        throw_model(what + ": '" + printable_tensor_name(module) + "' has factors " + shape_str(us) + " · " + shape_str(ds) +
                    ", which do not fit this model's weight " + shape_str(ws) +
                    " (a LoRA for another model, such as SDXL or SD 2.x?)");
      Delta d;
      d.out = out;
      d.rank = rank;
      d.rest = rest;
      d.up = finite_factor(*f, *p.up, what);
      d.down = finite_factor(*f, *p.down, what);
      double alpha = (double)rank;
      if (p.alpha) {
        const std::vector<float> a = finite_factor(*f, *p.alpha, what);
        if (a.size() != 1) throw_model(what + ": '" + printable_tensor_name(p.alpha->name) + "' is not one number");
        alpha = a[0];
      } else if (auto ar = peft_alpha_rank.find(p.component); ar != peft_alpha_rank.end()) {
        alpha = ar->second.first * (double)rank / ar->second.second;  // lora_alpha/r of the config
      }
      d.factor = (float)((double)spec.scale * alpha / (double)rank);
      if (!std::isfinite(d.factor) || !delta_fits_float(d.up, d.down, rank, d.factor))
        throw_model(what + ": '" + printable_tensor_name(module) + "' (alpha " + number_str(alpha) + ", rank " +
                    std::to_string(rank) + ", scale " + number_str(spec.scale) +
                    ") would change its weight by more than a float can hold");
      deltas[p.canonical].push_back(std::move(d));
      ++used;
    }
    if (used == 0)
      throw_model(what + ": none of its " + std::to_string(f->tensors().size()) +
                  " keys is a LoRA factor of this model's UNet or text encoder (a LoRA for SDXL, SD 2.x or "
                  "another model, or an unknown naming?)");
    if (!unmatched.empty() && warn) {
      std::string list;
      for (size_t i = 0; i < unmatched.size() && i < 5; ++i) list += (i ? ", " : "") + unmatched[i];
      warn("warning: " + what + ": " + std::to_string(unmatched.size()) + " keys unmatched and ignored: " + list +
           (unmatched.size() > 5 ? ", ..." : ""));
    }
  }
  return std::make_unique<LoraCheckpoint>(base, std::move(deltas));
}

}  // namespace sdgen
