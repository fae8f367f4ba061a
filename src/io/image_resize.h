// Resizing input pictures as the tools people compare with do it:
//   resize_lanczos: PIL's Image.resize(size, LANCZOS, box) on 8-bit RGB (what A1111's img2img and
//     diffusers' VaeImageProcessor use): separable, horizontal pass first over the rows the vertical
//     pass needs, each pass rounding to 8 bits; the Lanczos-3 kernel widened by the scale when
//     shrinking, its weights normalized and held in 22-bit fixed point.
//   fit_image: A1111's resize modes (modules/images.py resize_image; diffusers' resize_mode default,
//     crop and fill are the same three): just — stretch to the size; crop — keep the aspect ratio,
//     cover the size, centre, cut off the overhang; fill — keep the aspect ratio, fit inside,
//     centre, and fill the bands on both sides by stretching the picture's edge rows (columns) with
//     PIL's default bicubic filter (the reference code passes no filter there).
#pragma once
#include <string>

#include "io/image_read.h"

namespace sdgen {

enum class ResizeMode { Just, Crop, Fill };  // --resize-mode just|crop|fill
const char* resize_mode_name(ResizeMode m);
bool parse_resize_mode(const std::string& text, ResizeMode* out);

// The source region of resize_lanczos, in source pixels (PIL's box; may be empty in one axis, which
// samples the edge rows as A1111's fill mode asks).
struct ResizeBox {
  double x0, y0, x1, y1;
};
RgbImage resize_lanczos(const RgbImage& in, int width, int height);
RgbImage resize_lanczos(const RgbImage& in, int width, int height, const ResizeBox& box);
// The same with PIL's BICUBIC filter (Keys, a = −0.5; Image.resize's default).
RgbImage resize_bicubic(const RgbImage& in, int width, int height, const ResizeBox& box);
// Copies src into dst with its top-left corner at (x, y), clipped to dst (PIL's paste without mask).
void paste(RgbImage& dst, const RgbImage& src, int x, int y);
// The picture at width × height by mode (a copy when it already has that size).
RgbImage fit_image(const RgbImage& in, int width, int height, ResizeMode mode);

}  // namespace sdgen
