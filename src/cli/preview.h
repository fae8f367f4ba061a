// Live previews (--preview FILE, --preview-every N): the denoised estimate of the latents after a
// unit (GenerateParams::preview) as a PNG, replaced atomically (a reader polling the file sees the
// last complete preview, never a partial one). Decoded by TAESD with --vae-tiny (the pipeline
// does it: GenerateParams::preview_pictures), else with A1111's "Approx cheap": each latent
// pixel's 4 channels through its published 4×3 matrix (latents → RGB), ·0.5 + 0.5, clamped to
// [0, 1], ·255 truncated as numpy's astype(uint8) — at the latent size (1/8 of the image's side);
// the images of one call side by side in a grid (io/image_grid.h).
#pragma once
#include <string>
#include <vector>

#include "io/image_read.h"

namespace sdgen::cli {

// One image's latents, NCHW [4, h, w] floats (x0 + i·4·h·w), as RGB at h × w.
RgbImage approx_cheap(const float* x0, int h, int w);

// The preview of `images` latents (NCHW [images, 4, h, w]) written to path atomically.
void write_preview(const std::string& path, const std::vector<float>& x0, int images, int h, int w);
// With --vae-tiny: the estimate decoded by TAESD at the image's size (the pipeline's), the images
// of one call in a grid, written the same way.
void write_preview(const std::string& path, const std::vector<RgbImage>& pictures);

}  // namespace sdgen::cli
