// Writes the tiny model's single files (and transformers 5's text encoder, SD 2's tokenizer) from the committed
// diffusers folders, byte for byte as the reference scripts wrote them, so that the repository
// carries each set of weights once (the GPU kit's 60 MiB: the tree travels with it).
//
//   derive_test_models DATA_DIR     (DATA_DIR: tests/data)
//
// Each file is checked against the SHA-256 the reference script recorded for its own output
// (DATA_DIR/derived_models.json, written by tests/reference/make_goldens.py and
// make_layout_goldens.py): a file that differs in any byte is removed and the program fails, so
// tests never read a fixture that is not the reference's. A file already there with the right hash
// is left alone.
//   tiny_sd/tiny_sd.safetensors            make_goldens.py save_ldm: the folder under LDM names (VAE
//                                          attention linears as [C,C,1,1]) + ldm_extras, fp32
//   tiny_sd/tiny_sd_fp16.safetensors       the same, floating tensors as fp16
//   tiny_sd_tf5/tiny_sd_tf5_fp16.safetensors   make_layout_goldens.py save_single_file: the
//                                          transformers 5 text encoder under "cond_stage_model.transformer.",
//                                          all fp16, no metadata, no extras
//   tiny_sd_tf5/diffusers/text_encoder/model.safetensors   transformers 5's save_pretrained:
//                                          the text encoder without "text_model."
//   tiny_sdxl/tiny_sdxl.safetensors        make_sdxl_goldens.py write_ldm: the SDXL folder under
//                                          SDXL base's original names, fp16
//   tiny_sd2/diffusers/tokenizer/tokenizer.json   make_sd2_goldens.py save: transformers 5's
//                                          tokenizer.json, compacted; tiny_sd_tf5's with OpenCLIP's
//                                          pad token "!" (id 0) first among the added tokens
// Layout as the safetensors library writes: tensors ordered by dtype (wider integer and float
// kinds first, in its dtype enum's order) then name, the header's keys in that order after
// "__metadata__", padded with spaces to a multiple of 8.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "io/checkpoint_names.h"
#include "io/model_config_load.h"
#include "io/safetensors.h"
#include "sdgen/error.h"
#include "sdgen/half.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;

struct Entry {
  std::string name;
  StDType dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
};

// safetensors' Dtype enum order (BOOL, U8, I8, ..., I16, U16, F16, BF16, I32, U32, F32, F64, I64,
// U64); its writer sorts by it, descending.
int dtype_rank(StDType d) {
  switch (d) {
    case StDType::BOOL: return 0;
    case StDType::U8: return 1;
    case StDType::I8: return 2;
    case StDType::I16: return 3;
    case StDType::U16: return 4;
    case StDType::F16: return 5;
    case StDType::BF16: return 6;
    case StDType::I32: return 7;
    case StDType::U32: return 8;
    case StDType::F32: return 9;
    case StDType::F64: return 10;
    case StDType::I64: return 11;
    case StDType::U64: return 12;
  }
  return 0;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Every floating tensor as fp16 (torch's .half(): round to nearest even); others as they are.
std::vector<Entry> halved(std::vector<Entry> in) {
  for (Entry& e : in) {
    if (e.dtype != StDType::F32) continue;
    std::vector<uint8_t> b(e.bytes.size() / 2);
    for (size_t i = 0; i < e.bytes.size() / 4; ++i) {
      float f;
      std::memcpy(&f, &e.bytes[4 * i], 4);
      const uint16_t h = float_to_half_bits(f);
      std::memcpy(&b[2 * i], &h, 2);
    }
    e.bytes = std::move(b);
    e.dtype = StDType::F16;
  }
  return in;
}

void write_like_safetensors(const std::string& path, std::vector<Entry> entries, bool pt_metadata) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const int ra = dtype_rank(a.dtype), rb = dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
  std::vector<StWriteTensor> out;
  for (Entry& e : entries) out.push_back({e.name, e.dtype, e.shape, std::move(e.bytes)});
  std::map<std::string, std::string> meta;
  if (pt_metadata) meta["format"] = "pt";
  write_safetensors(path, out, meta);
}

std::vector<Entry> read_all(const std::string& path, const std::string& prefix) {
  auto f = SafetensorsFile::open(path);
  std::vector<Entry> out;
  for (const StTensorInfo& t : f->tensors()) {
    Entry e{prefix + t.name, t.dtype, t.shape, std::vector<uint8_t>(t.end - t.begin)};
    f->copy_bytes(t, e.bytes.data());
    out.push_back(std::move(e));
  }
  return out;
}

// make_goldens.py's ldm_extras: what real LDM files carry besides the weights.
void add_ldm_extras(std::vector<Entry>& sd) {
  std::vector<uint8_t> pos(77 * 8);
  for (int64_t i = 0; i < 77; ++i) std::memcpy(&pos[8 * i], &i, 8);
  sd.push_back({"cond_stage_model.transformer.text_model.embeddings.position_ids", StDType::I64, {1, 77}, pos});
  sd.push_back({"model_ema.decay", StDType::F32, {}, f32_bytes({0.9999f})});
  const int32_t updates = 470000;
  std::vector<uint8_t> u(4);
  std::memcpy(u.data(), &updates, 4);
  sd.push_back({"model_ema.num_updates", StDType::I32, {}, u});
  for (const Entry& e : std::vector<Entry>(sd))
    if (e.name == "model.diffusion_model.time_embed.0.weight") {
      std::vector<float> w(e.bytes.size() / 4);
      std::memcpy(w.data(), e.bytes.data(), e.bytes.size());
      for (float& x : w) x = x + 1.0f;
      sd.push_back({"model_ema.diffusion_modeltime_embed0weight", StDType::F32, e.shape, f32_bytes(w)});
    }
  // torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, float64) ** 2, its cumprod, stored as fp32.
  // torch fills a linspace from both ends: start + i*step below the middle, end - (n-1-i)*step above.
  const int n = 1000;
  const double start = std::sqrt(0.00085), end = std::sqrt(0.012), step = (end - start) / (n - 1);
  std::vector<float> betas(n), ac(n), prev(n);
  double cum = 1.0;
  for (int i = 0; i < n; ++i) {
    const double x = i < n / 2 ? start + step * i : end - step * (n - 1 - i);
    const double beta = x * x;
    prev[i] = (float)cum;
    cum *= 1.0 - beta;
    betas[i] = (float)beta;
    ac[i] = (float)cum;
  }
  sd.push_back({"betas", StDType::F32, {n}, f32_bytes(betas)});
  sd.push_back({"alphas_cumprod", StDType::F32, {n}, f32_bytes(ac)});
  sd.push_back({"alphas_cumprod_prev", StDType::F32, {n}, f32_bytes(prev)});
}

// The folder's model config, as far as the name table needs it.
ModelConfig folder_config(const std::string& folder) {
  ModelConfig cfg;
  apply_unet_json(read_json_file(folder + "/unet/config.json"), cfg.unet, folder);
  apply_vae_json(read_json_file(folder + "/vae/config.json"), cfg.vae, folder);
  apply_clip_json(read_json_file(folder + "/text_encoder/config.json"), cfg.clip, folder);
  if (fs::is_directory(folder + "/text_encoder_2")) {
    cfg.clip2 = ClipConfig();
    apply_clip_json(read_json_file(folder + "/text_encoder_2/config.json"), cfg.clip2, folder, true);
  }
  return cfg;
}

// ldm_names.to_ldm: the folder's UNet, VAE and (when given) text encoder under LDM names.
std::vector<Entry> to_ldm(const std::string& folder, bool with_text_encoder) {
  const ModelConfig cfg = folder_config(folder);
  const CheckpointNames names(cfg);
  std::vector<Entry> all = read_all(folder + "/unet/diffusion_pytorch_model.safetensors", "unet.");
  for (Entry& e : read_all(folder + "/vae/diffusion_pytorch_model.safetensors", "vae.")) all.push_back(std::move(e));
  if (with_text_encoder)
    for (Entry& e : read_all(folder + "/text_encoder/model.safetensors", "text_encoder.")) all.push_back(std::move(e));
  for (Entry& e : all) {
    const std::optional<std::string> ldm = names.to_ldm(e.name);
    if (!ldm) throw_model("derive_test_models: no LDM name for " + e.name);
    e.name = *ldm;
    const bool vae_attention_linear =
        e.name.rfind("first_stage_model.", 0) == 0 && e.name.find(".attn_1.") != std::string::npos &&
        e.shape.size() == 2;
    if (vae_attention_linear) e.shape = {e.shape[0], e.shape[1], 1, 1};
  }
  return all;
}

// make_sdxl_goldens.py write_ldm: SDXL base's original names, every tensor fp16 as the folder holds
// it. The UNet (label_emb included) and VAE as ldm_names.to_ldm; CLIP ViT-L under sgm's
// FrozenCLIPEmbedder with "text_model."; OpenCLIP bigG as make_sd2_goldens.openclip_names writes it:
// q/k/v packed into in_proj_weight/in_proj_bias (row blocks in q, k, v order), text_projection as
// x @ P (the transpose of transformers' weight), logit_scale 4.6052.
std::vector<Entry> sdxl_ldm(const std::string& folder) {
  const ModelConfig cfg = folder_config(folder);
  std::vector<Entry> sd = to_ldm(folder, false);
  const std::string clip_root = std::string(CheckpointNames::kSdxlClipRoot) + ".text_model.";
  for (Entry& e : read_all(folder + "/text_encoder/model.safetensors", "")) {
    e.name = clip_root + (e.name.rfind("text_model.", 0) == 0 ? e.name.substr(11) : e.name);
    sd.push_back(std::move(e));
  }
  std::map<std::string, Entry> te2;
  for (Entry& e : read_all(folder + "/text_encoder_2/model.safetensors", "text_encoder_2.")) te2[e.name] = std::move(e);
  std::map<std::string, Entry> stored;
  for (const auto& o : CheckpointNames::open_clip_tensors(cfg.clip2.layers, cfg.clip2.hidden,
                                                          CheckpointNames::kSdxlOpenClipRoot, "text_encoder_2", true)) {
    auto it = te2.find(o.canonical);
    if (it == te2.end()) throw_model("derive_test_models: " + folder + " has no " + o.canonical);
    const Entry& src = it->second;
    if (o.transpose) {
      const size_t esize = src.bytes.size() / (size_t)(src.shape[0] * src.shape[1]);
      Entry t{o.stored, src.dtype, {src.shape[1], src.shape[0]}, std::vector<uint8_t>(src.bytes.size())};
      for (int64_t i = 0; i < src.shape[0]; ++i)
        for (int64_t j = 0; j < src.shape[1]; ++j)
          std::memcpy(&t.bytes[(size_t)(j * src.shape[0] + i) * esize], &src.bytes[(size_t)(i * src.shape[1] + j) * esize],
                      esize);
      stored[o.stored] = std::move(t);
    } else if (o.rows >= 0) {  // q, k, v in that order: each appended below the last
      auto [at, fresh] = stored.try_emplace(o.stored, Entry{o.stored, src.dtype, src.shape, {}});
      if (!fresh) at->second.shape[0] += src.shape[0];
      at->second.bytes.insert(at->second.bytes.end(), src.bytes.begin(), src.bytes.end());
    } else {
      stored[o.stored] = Entry{o.stored, src.dtype, src.shape, src.bytes};
    }
  }
  for (auto& [n, e] : stored) sd.push_back(std::move(e));
  const uint16_t logit_scale = float_to_half_bits(4.6052f);
  std::vector<uint8_t> b(2);
  std::memcpy(b.data(), &logit_scale, 2);
  sd.push_back({std::string(CheckpointNames::kSdxlOpenClipRoot) + ".logit_scale", StDType::F16, {}, b});
  return sd;
}

// tiny_sd_tf5's tokenizer.json (CLIP's vocabulary as transformers 5 writes it, compact JSON) with
// OpenCLIP's pad token added as the first of its added tokens, as make_sd2_goldens.py's file has it.
void write_openclip_tokenizer(const std::string& tf5_json, const std::string& out) {
  std::ifstream in(tf5_json, std::ios::binary);
  if (!in) throw_model("derive_test_models: cannot read " + tf5_json);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string list = "\"added_tokens\":[";
  const size_t at = text.find(list);
  if (at == std::string::npos) throw_model("derive_test_models: " + tf5_json + " has no added_tokens");
  text.insert(at + list.size(), "{\"id\":0,\"content\":\"!\",\"single_word\":false,\"lstrip\":false,"
                                "\"rstrip\":false,\"normalized\":false,\"special\":true},");
  std::ofstream o(out, std::ios::binary);
  o << text;
  if (!o.good()) throw_model("derive_test_models: cannot write " + out);
}

// Writes `rel` under `data` unless it is there with the recorded hash; fails on any other bytes.
bool derive(const std::string& data, const nlohmann::json& hashes, const std::string& rel,
            const std::function<void(const std::string&)>& write) {
  const std::string path = data + "/" + rel;
  if (!hashes.contains(rel)) throw_usage("derive_test_models: " + data + "/derived_models.json has no hash for " + rel);
  const std::string want = hashes[rel].get<std::string>();
  if (fs::is_regular_file(path) && sha256_file(path) == want) return true;
  fs::remove(path);
  write(path);
  const std::string got = sha256_file(path);
  if (got == want) {
    std::printf("derive_test_models: wrote %s\n", rel.c_str());
    return true;
  }
  fs::remove(path);
  std::fprintf(stderr, "derive_test_models: %s came out with SHA-256 %s, not the reference's %s\n", rel.c_str(),
               got.c_str(), want.c_str());
  return false;
}

int run(const std::string& data) {
  const nlohmann::json hashes = read_json_file(data + "/derived_models.json")["sha256"];
  const std::string v1 = data + "/tiny_sd/diffusers", tf5 = data + "/tiny_sd_tf5/diffusers";
  bool ok = true;
  ok &= derive(data, hashes, "tiny_sd/tiny_sd.safetensors", [&](const std::string& p) {
    std::vector<Entry> sd = to_ldm(v1, true);
    add_ldm_extras(sd);
    write_like_safetensors(p, std::move(sd), true);
  });
  ok &= derive(data, hashes, "tiny_sd/tiny_sd_fp16.safetensors", [&](const std::string& p) {
    std::vector<Entry> sd = to_ldm(v1, true);
    add_ldm_extras(sd);
    write_like_safetensors(p, halved(std::move(sd)), true);
  });
  // transformers 5 saves CLIPTextModel's state dict without the "text_model." level.
  ok &= derive(data, hashes, "tiny_sd_tf5/diffusers/text_encoder/model.safetensors", [&](const std::string& p) {
    std::vector<Entry> te = read_all(v1 + "/text_encoder/model.safetensors", "");
    for (Entry& e : te)
      if (e.name.rfind("text_model.", 0) == 0) e.name = e.name.substr(11);
    write_like_safetensors(p, std::move(te), true);
  });
  ok &= derive(data, hashes, "tiny_sd_tf5/tiny_sd_tf5_fp16.safetensors", [&](const std::string& p) {
    std::vector<Entry> sd = to_ldm(tf5, false);
    for (Entry& e : read_all(tf5 + "/text_encoder/model.safetensors", "cond_stage_model.transformer."))
      sd.push_back(std::move(e));
    write_like_safetensors(p, halved(std::move(sd)), false);
  });
  ok &= derive(data, hashes, "tiny_sdxl/tiny_sdxl.safetensors", [&](const std::string& p) {
    write_like_safetensors(p, halved(sdxl_ldm(data + "/tiny_sdxl/diffusers")), true);
  });
  ok &= derive(data, hashes, "tiny_sd2/diffusers/tokenizer/tokenizer.json", [&](const std::string& p) {
    write_openclip_tokenizer(tf5 + "/tokenizer/tokenizer.json", p);
  });
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace sdgen

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: derive_test_models DATA_DIR\n");
    return 2;
  }
  try {
    return sdgen::run(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derive_test_models: %s\n", e.what());
    return 1;
  }
}
