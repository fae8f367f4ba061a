// The latent upscalers of the hires fix (pipeline/hires.h): torch.nn.functional.interpolate on NCHW
// fp32 latents to an output size, with the arguments A1111's latent_upscale_modes pass
// (align_corners False, antialias False):
//   Bilinear ("Latent"): source coordinate (i + 0.5)·in/out − 0.5, clamped at 0; two taps.
//   Nearest ("Latent (nearest)"): source index floor(i·in/out), the ratio in float, at most in − 1.
//   Bicubic ("Latent (bicubic)"): the same coordinate unclamped; Keys' cubic with A = −0.75 over four
//     taps, indices clamped to the edge.
// Separable, as torch's CPU kernels: per output row and column the taps and weights of each axis.
// On the host: latents are small (a 1024² image's are 4·128·128 floats per image).
#pragma once
#include <vector>

namespace sdgen {

enum class LatentUpscaleMode { Bilinear, Nearest, Bicubic };

// x: [n, c, h, w] NCHW; returns [n, c, out_h, out_w].
std::vector<float> upscale_latents(const std::vector<float>& x, int n, int c, int h, int w, int out_h, int out_w,
                                   LatentUpscaleMode mode);

}  // namespace sdgen
