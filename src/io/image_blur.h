// Pillow's ImageFilter.GaussianBlur(radius) on an 8-bit grey picture (what diffusers'
// VaeImageProcessor.blur and A1111's "Mask blur" do to an inpainting mask), to the byte.
//
// Pillow approximates the Gaussian by three passes of an "extended box" (Gwosdek et al., SSVM 2011):
// a box of integer radius l plus a fractional weight on the two pixels just outside it, the box's
// real radius l + a chosen so that three passes have the variance radius². Every pass runs along
// the rows (three times), then along the columns (three times), the edges extended by repeating the
// edge pixel, each output rounded to a byte from 24-bit fixed-point weights. The float arithmetic
// of the radius and of the weights is single precision, as Pillow's C code computes it.
#pragma once
#include <cstdint>
#include <vector>

#include "io/image_read.h"

namespace sdgen {

// The box radius of one of `passes` passes for a Gaussian of standard deviation `sigma`.
float extended_box_radius(float sigma, int passes);

// grey: width × height bytes, rows top to bottom. radius 0 returns the picture unchanged.
std::vector<uint8_t> gaussian_blur_grey(const std::vector<uint8_t>& grey, int width, int height, float radius);

// PIL's convert("L"): ITU-R 601 luma in 16-bit fixed point.
std::vector<uint8_t> grey_of(const RgbImage& im);
// Whether a grey mask repaints nothing (every byte 0): --inpaint-area masked has no box then.
bool mask_is_empty(const std::vector<uint8_t>& mask);
// A grey picture as RGB with r = g = b (its convert("L") gives the grey back).
RgbImage rgb_of_grey(const std::vector<uint8_t>& grey, int width, int height);

}  // namespace sdgen
