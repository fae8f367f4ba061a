// The inpainting options around a generation (GenerateParams::mask_blur, inpaint_masked), as
// diffusers' StableDiffusionInpaintPipeline and VaeImageProcessor do them (A1111's "Mask blur" and
// "Inpaint area: Only masked"):
//   1. the grey mask blurred by PIL's GaussianBlur(mask_blur) (io/image_blur.h); the pipeline then
//      binarizes it as any mask (≥ 128 repainted);
//   2. "only masked": the mask's bounding box plus inpaint_padding, grown to the generation's aspect
//      ratio and kept inside the picture (get_crop_region); picture and mask cropped to it and
//      resized to width × height with the fill mode (preprocess with crops_coords,
//      resize_mode="fill"); generated; each image resized back to the box (crop mode), pasted
//      into the picture and composited under the picture's kept part through the blurred mask
//      (apply_overlay, Pillow's integer RGBa/alpha_composite arithmetic). The images then have
//      the picture's size.
#pragma once
#include <cstdint>
#include <vector>

#include "io/image_read.h"
#include "pipeline/pipeline.h"

namespace sdgen {

struct CropBox {
  int x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // [x1, x2) × [y1, y2)
};

// get_crop_region of a grey mask (mw × mh bytes) for a width × height generation; nullopt-like
// empty box (x2 <= x1) when no byte is non-zero.
CropBox mask_crop_region(const std::vector<uint8_t>& mask, int mw, int mh, int width, int height, int pad);

RgbImage crop_image(const RgbImage& im, const CropBox& box);

// apply_overlay: `generated` resized into `box` (crop mode) over a black picture of init's size,
// then init composited over it with alpha 255 − mask.
RgbImage overlay_inpainted(const std::vector<uint8_t>& mask, const RgbImage& init, const RgbImage& generated,
                           const CropBox& box);

// --inpaint-fill latent-noise (A1111's "Masked content: latent noise": init_latent·keep +
// randn·repaint): x0 and the start x, NCHW [B, C, h, w], take `fill` where the latent-grid mask
// (h·w, 0 or 1, the same for every image and channel) is 1, and x there becomes a·fill + b·z, the
// plan's add_noise mix (unchanged when the start is pure noise).
void fill_with_latent_noise(const std::vector<float>& fill, const std::vector<float>& z, const std::vector<float>& grid,
                            float a, float b, bool pure_noise, std::vector<float>& x0, std::vector<float>& x);

// The generation of p with its mask blurred and, with inpaint_masked, cropped and pasted back.
GeneratedBatch generate_inpaint_area(Pipeline& pipe, const GenerateParams& p, const Pipeline::StepCallback& on_step);

}  // namespace sdgen
