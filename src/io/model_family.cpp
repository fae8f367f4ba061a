#include "io/model_family.h"

#include <algorithm>

#include "sdgen/error.h"

namespace sdgen {

namespace {
bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
[[noreturn]] void refuse(const std::string& where, const std::string& what) {
  throw_model(where + " is " + what + "; sd-gen runs Stable Diffusion v1.x, 2.x and SDXL base (CLIP ViT-L/14, "
              "OpenCLIP ViT-H or both SDXL encoders, a UNet on 4 latent channels, or 9 for inpainting, predicting epsilon "
              "or v)");
}
// The input widths of the known conditioned variants sd-gen does not run; other widths are left to
// the pipeline's own check (a UNet takes the 4 latent channels, or 9 for an inpainting model:
// latents, mask, masked picture's latents).
std::string in_channels_family(int c) {
  if (c == 8) return "an InstructPix2Pix-style model (its UNet takes 8 channels: latents and an image)";
  return "";
}
}  // namespace

void reject_other_ldm_families(const std::vector<std::string>& names,
                               const std::function<std::optional<Shape>(const std::string&)>& shape_of,
                               const std::string& where) {
  auto any = [&](const char* prefix) {
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return starts(n, prefix); });
  };
  const bool open_clip = any("cond_stage_model.model.");
  // SDXL base: CLIP ViT-L as embedders.0, OpenCLIP bigG as embedders.1; the refiner has bigG alone.
  const bool sdxl = any("conditioner.embedders.0.transformer.") && any("conditioner.embedders.1.model.");
  for (const std::string& n : names) {
    if (starts(n, "conditioner.embedders.") && !sdxl)
      refuse(where, starts(n, "conditioner.embedders.0.model.")
                        ? "an SDXL refiner checkpoint (conditioner.embedders.0.model.*: OpenCLIP bigG alone, an aesthetic "
                          "score among the size ids); SDXL base runs, the refiner not"
                        : "an SDXL-like checkpoint whose text encoders (conditioner.embedders.*) are not SDXL base's "
                          "CLIP ViT-L (embedders.0.transformer) and OpenCLIP bigG (embedders.1.model)");
    if (starts(n, "model.diffusion_model.label_emb.") && !sdxl)
      refuse(where, open_clip ? "an SD 2 unCLIP or x4-upscaler checkpoint (model.diffusion_model.label_emb.*: an extra "
                                "conditioning input)"
                              : "an SDXL-style UNet (model.diffusion_model.label_emb.*: size conditioning) without SDXL's "
                                "two text encoders (conditioner.embedders.0/1.*)");
    if (starts(n, "embedder.") || starts(n, "noise_augmentor."))
      refuse(where, "an SD 2 unCLIP checkpoint (" + n.substr(0, n.find('.')) + ".*: an image encoder)");
    if (starts(n, "depth_model."))
      refuse(where, "an SD 2 depth model (depth_model.*: a depth estimator; its UNet takes latents and a depth map)");
  }
  if (auto s = shape_of("model.diffusion_model.input_blocks.0.0.weight"); s && s->size() == 4)
    if (const std::string f = in_channels_family((int)(*s)[1]); !f.empty()) refuse(where, f);
}

void reject_other_families(const ModelConfig& cfg, const std::string& prediction_type, const std::string& where) {
  if (!cfg.sdxl() && !cfg.unet.text_time() &&
      (cfg.unet.cross_attention_dim == 2048 || cfg.unet.cross_attention_dim == 1280))
    refuse(where, "an SDXL model (cross-attention over " + std::to_string(cfg.unet.cross_attention_dim) +
                      "-wide text features)");
  if (const std::string f = in_channels_family(cfg.unet.in_channels); !f.empty()) refuse(where, f);
  // v_prediction runs (sampler/linear_form.h's model_eps); x0 ("sample") models are left out.
  if (!prediction_type.empty() && prediction_type != "epsilon" && prediction_type != "v_prediction")
    refuse(where, "a model whose scheduler predicts \"" + prediction_type + "\", not epsilon or v");
}

}  // namespace sdgen
