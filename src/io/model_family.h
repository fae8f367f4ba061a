// Checkpoints of the other Stable Diffusion families, named as such: sd-gen runs SD v1.x and 2.x
// (CLIP ViT-L/14 or OpenCLIP ViT-H text encoder, 4-channel UNet predicting epsilon or v), and a file
// of SDXL, SD 2 unCLIP/depth/x4-upscaler or another conditioned variant is refused with what it is
// rather than a missing tensor.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sdgen/config.h"
#include "sdgen/tensor.h"

namespace sdgen {

// An LDM single file, from its tensor names and shapes: throws Error(kModel) naming the family.
void reject_other_ldm_families(const std::vector<std::string>& names,
                               const std::function<std::optional<Shape>(const std::string&)>& shape_of,
                               const std::string& where);
// A diffusers folder, from its configs: throws Error(kModel) naming the family.
void reject_other_families(const ModelConfig& cfg, const std::string& prediction_type, const std::string& where);

}  // namespace sdgen
