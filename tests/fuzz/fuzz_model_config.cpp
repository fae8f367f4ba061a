// libFuzzer target: a checkpoint's architecture from what the file says of itself: tensor names and
// shapes (config inference for LDM single files and diffusers folders, the other-family checks),
// and the config JSON a folder, a sidecar or __metadata__ carries; then the validation and the
// LDM name table that a valid config builds. The first byte picks the reader; the rest is JSON:
//   0: {"tensor name": [dims...], ...} as an LDM single file      1: the same as a diffusers folder
//   2: an sdgen_config object (sidecar / __metadata__)           3: {"unet": config.json, "vae": ...,
//      "text_encoder": ..., "scheduler": scheduler_config.json} as a folder's files
// Errors are sdgen::Error; anything else (a crash, a sanitizer report, a hang, a huge allocation)
// is a finding.
#include <map>
#include <nlohmann/json.hpp>

#include "io/checkpoint_names.h"
#include "io/model_config_load.h"
#include "io/model_family.h"
#include "sdgen/error.h"

namespace {

void names_and_shapes(const nlohmann::json& j, bool ldm) {
  if (!j.is_object()) return;
  std::map<std::string, sdgen::Shape> shapes;
  std::vector<std::string> names;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_array()) continue;
    sdgen::Shape s;
    for (const auto& d : it.value())
      if (d.is_number_integer()) s.push_back(d.get<int64_t>());
    shapes[it.key()] = s;
    names.push_back(it.key());
  }
  const sdgen::ShapeOf shape_of = [&](const std::string& n) -> std::optional<sdgen::Shape> {
    auto f = shapes.find(n);
    if (f == shapes.end()) return std::nullopt;
    return f->second;
  };
  sdgen::ModelConfig cfg;
  if (ldm) {
    sdgen::reject_other_ldm_families(names, shape_of, "fuzz");
    cfg = sdgen::infer_ldm_config(names, shape_of, "fuzz");
  } else {
    cfg = sdgen::infer_diffusers_config(names, shape_of, "fuzz");
  }
  sdgen::validate_model_config(cfg, "fuzz");
  sdgen::CheckpointNames table(cfg);
  for (const std::string& n : names) table.to_canonical(n);
}

void config_files(const nlohmann::json& j, bool sidecar) {
  sdgen::ModelConfig cfg;
  if (sidecar) {
    sdgen::apply_sdgen_config_json(j, cfg, "fuzz");
  } else {
    if (!j.is_object()) return;
    if (j.contains("unet")) sdgen::apply_unet_json(j["unet"], cfg.unet, "fuzz");
    if (j.contains("vae")) sdgen::apply_vae_json(j["vae"], cfg.vae, "fuzz");
    if (j.contains("text_encoder")) sdgen::apply_clip_json(j["text_encoder"], cfg.clip, "fuzz");
    if (j.contains("scheduler")) sdgen::apply_scheduler_json(j["scheduler"], cfg.scheduler, "fuzz");
  }
  sdgen::validate_model_config(cfg, "fuzz");
  sdgen::reject_other_families(cfg, "epsilon", "fuzz");
  sdgen::CheckpointNames table(cfg);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const nlohmann::json j = nlohmann::json::parse(data + 1, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    switch (data[0] % 4) {
      case 0: names_and_shapes(j, true); break;
      case 1: names_and_shapes(j, false); break;
      case 2: config_files(j, true); break;
      default: config_files(j, false); break;
    }
  } catch (const sdgen::Error&) {
  }
  return 0;
}
