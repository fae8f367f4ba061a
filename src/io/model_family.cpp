#include "io/model_family.h"

#include "sdgen/error.h"

namespace sdgen {

namespace {
bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
[[noreturn]] void refuse(const std::string& where, const std::string& what) {
  throw_model(where + " is " + what + "; sd-gen runs Stable Diffusion v1.x (CLIP ViT-L/14 text encoder, "
              "4-channel UNet predicting epsilon or v)");
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
  for (const std::string& n : names) {
    if (starts(n, "conditioner.embedders.") || starts(n, "model.diffusion_model.label_emb."))
      refuse(where, "an SDXL checkpoint (" + n.substr(0, n.find('.', 12)) +
                        ".*: two text encoders and size conditioning)");
    if (starts(n, "cond_stage_model.model."))
      refuse(where, "an SD 2.x checkpoint (cond_stage_model.model.*: the OpenCLIP ViT-H text encoder; the 768×768 "
                    "ones also predict v)");
  }
  if (auto s = shape_of("model.diffusion_model.input_blocks.0.0.weight"); s && s->size() == 4)
    if (const std::string f = in_channels_family((int)(*s)[1]); !f.empty()) refuse(where, f);
}

void reject_other_families(const ModelConfig& cfg, const std::string& prediction_type, const std::string& where) {
  if (cfg.clip.hidden == 1024)
    refuse(where, "an SD 2.x model (a 1024-wide text encoder: OpenCLIP ViT-H)");
  if (cfg.unet.cross_attention_dim == 2048 || cfg.unet.cross_attention_dim == 1280)
    refuse(where, "an SDXL model (cross-attention over " + std::to_string(cfg.unet.cross_attention_dim) +
                      "-wide text features)");
  if (const std::string f = in_channels_family(cfg.unet.in_channels); !f.empty()) refuse(where, f);
  // v_prediction runs (sampler/linear_form.h's model_eps); x0 ("sample") models are left out.
  if (!prediction_type.empty() && prediction_type != "epsilon" && prediction_type != "v_prediction")
    refuse(where, "a model whose scheduler predicts \"" + prediction_type + "\", not epsilon or v");
}

}  // namespace sdgen
