#include "io/model_family.h"

#include <algorithm>

#include "sdgen/error.h"

namespace sdgen {

namespace {
bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
[[noreturn]] void refuse(const std::string& where, const std::string& what) {
  throw_model(where + " is " + what + "; sd-gen runs Stable Diffusion v1.x and 2.x (a CLIP ViT-L/14 or OpenCLIP "
              "ViT-H text encoder, a UNet on 4 latent channels, or 9 for inpainting, predicting epsilon or v)");
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
  const bool open_clip = std::any_of(names.begin(), names.end(),
                                     [](const std::string& n) { return starts(n, "cond_stage_model.model."); });
  for (const std::string& n : names) {
    if (starts(n, "conditioner.embedders."))
      refuse(where, "an SDXL checkpoint (" + n.substr(0, n.find('.', 12)) +
                        ".*: two text encoders and size conditioning)");
    if (starts(n, "model.diffusion_model.label_emb."))
      refuse(where, open_clip ? "an SD 2 unCLIP or x4-upscaler checkpoint (model.diffusion_model.label_emb.*: an extra "
                                "conditioning input)"
                              : "an SDXL checkpoint (model.diffusion_model.label_emb.*: size conditioning)");
    if (starts(n, "embedder.") || starts(n, "noise_augmentor."))
      refuse(where, "an SD 2 unCLIP checkpoint (" + n.substr(0, n.find('.')) + ".*: an image encoder)");
    if (starts(n, "depth_model."))
      refuse(where, "an SD 2 depth model (depth_model.*: a depth estimator; its UNet takes latents and a depth map)");
  }
  if (auto s = shape_of("model.diffusion_model.input_blocks.0.0.weight"); s && s->size() == 4)
    if (const std::string f = in_channels_family((int)(*s)[1]); !f.empty()) refuse(where, f);
}

void reject_other_families(const ModelConfig& cfg, const std::string& prediction_type, const std::string& where) {
  if (cfg.unet.cross_attention_dim == 2048 || cfg.unet.cross_attention_dim == 1280)
    refuse(where, "an SDXL model (cross-attention over " + std::to_string(cfg.unet.cross_attention_dim) +
                      "-wide text features)");
  if (const std::string f = in_channels_family(cfg.unet.in_channels); !f.empty()) refuse(where, f);
  // v_prediction runs (sampler/linear_form.h's model_eps); x0 ("sample") models are left out.
  if (!prediction_type.empty() && prediction_type != "epsilon" && prediction_type != "v_prediction")
    refuse(where, "a model whose scheduler predicts \"" + prediction_type + "\", not epsilon or v");
}

}  // namespace sdgen
