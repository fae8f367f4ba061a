// PIL-compatible Lanczos resampling and A1111's resize modes (image_resize.h). The arithmetic
// follows PIL's documented design (libImaging/Resample.c): per output pixel the support
// [center − s, center + s] with s = 3·max(scale, 1), weights lanczos((x − center + 0.5)/max(scale, 1))
// normalized to sum 1, converted to fixed point with 22 fraction bits (rounded away from zero),
// accumulated from one half, shifted back and clipped to 0..255.
#include "io/image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "sdgen/error.h"

namespace sdgen {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}
double lanczos3(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }
// Keys' cubic with a = −0.5, PIL's BICUBIC (Image.resize's default filter).
double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
struct Filter {
  double (*f)(double);
  double support;
};
constexpr Filter kLanczos{lanczos3, 3.0}, kBicubic{bicubic, 2.0};

// One axis: for each output index its first source index, its tap count and integer weights.
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weight;  // [out, ksize]
};

Taps taps_for(int in_size, double in0, double in1, int out_size, const Filter& filter) {
  Taps t;
  const double scale = (in1 - in0) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = filter.support * filterscale;
  t.ksize = (int)std::ceil(support) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weight.assign((size_t)out_size * t.ksize, 0);
  std::vector<double> k((size_t)t.ksize);
  for (int o = 0; o < out_size; ++o) {
    const double center = in0 + (o + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int lo = std::max((int)(center - support + 0.5), 0);
    const int hi = std::min((int)(center + support + 0.5), in_size);
    const int n = std::max(hi - lo, 0);
    double sum = 0.0;
    for (int x = 0; x < n; ++x) sum += (k[(size_t)x] = filter.f((x + lo - center + 0.5) * ss));
    for (int x = 0; x < n; ++x) {
      const double w = sum != 0.0 ? k[(size_t)x] / sum : k[(size_t)x];
      const double f = w * (1 << kPrecisionBits);
      t.weight[(size_t)o * t.ksize + x] = (int32_t)(w < 0 ? -0.5 + f : 0.5 + f);
    }
    t.first[o] = lo;
    t.count[o] = n;
  }
  return t;
}

uint8_t clip8(int64_t v) {
  if (v >= ((int64_t)1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return (uint8_t)(v >> kPrecisionBits);
}

}  // namespace

const char* resize_mode_name(ResizeMode m) {
  switch (m) {
    case ResizeMode::Just: return "just";
    case ResizeMode::Crop: return "crop";
    case ResizeMode::Fill: return "fill";
  }
  return "?";
}

bool parse_resize_mode(const std::string& text, ResizeMode* out) {
  for (ResizeMode m : {ResizeMode::Just, ResizeMode::Crop, ResizeMode::Fill})
    if (text == resize_mode_name(m)) {
      *out = m;
      return true;
    }
  return false;
}

RgbImage resize_lanczos(const RgbImage& in, int width, int height) {
  return resize_lanczos(in, width, height, {0, 0, (double)in.width, (double)in.height});
}

namespace {
RgbImage resample(const RgbImage& in, int width, int height, const ResizeBox& box, const Filter& filter) {
  SDGEN_CHECK(width > 0 && height > 0, "resize: empty output");
  const bool horizontal = width != in.width || box.x0 != 0 || box.x1 != width;
  const bool vertical = height != in.height || box.y0 != 0 || box.y1 != height;
  const Taps tv = taps_for(in.height, box.y0, box.y1, height, filter);
  // The horizontal pass covers only the rows the vertical one reads.
  const int row0 = tv.first[0];
  const int row1 = tv.first[(size_t)height - 1] + tv.count[(size_t)height - 1];
  RgbImage mid;
  int mid_row0 = 0;
  if (horizontal) {
    const Taps th = taps_for(in.width, box.x0, box.x1, width, filter);
    mid.width = width;
    mid.height = row1 - row0;
    mid.pixels.assign((size_t)mid.width * mid.height * 3, 0);
    for (int y = 0; y < mid.height; ++y)
      for (int x = 0; x < width; ++x) {
        const int32_t* k = &th.weight[(size_t)x * th.ksize];
        for (int c = 0; c < 3; ++c) {
          int64_t acc = (int64_t)1 << (kPrecisionBits - 1);
          for (int j = 0; j < th.count[x]; ++j) acc += (int64_t)in.at(th.first[x] + j, row0 + y, c) * k[j];
          mid.pixels[((size_t)y * width + x) * 3 + c] = clip8(acc);
        }
      }
    mid_row0 = row0;
  } else {
    mid = in;
  }
  if (!vertical) return mid;
  RgbImage out;
  out.width = width;
  out.height = height;
  out.pixels.assign((size_t)width * height * 3, 0);
  for (int y = 0; y < height; ++y) {
    const int32_t* k = &tv.weight[(size_t)y * tv.ksize];
    const int first = tv.first[y] - mid_row0;
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        int64_t acc = (int64_t)1 << (kPrecisionBits - 1);
        for (int j = 0; j < tv.count[y]; ++j) acc += (int64_t)mid.at(x, first + j, c) * k[j];
        out.pixels[((size_t)y * width + x) * 3 + c] = clip8(acc);
      }
  }
  return out;
}
}  // namespace

RgbImage resize_lanczos(const RgbImage& in, int width, int height, const ResizeBox& box) {
  return resample(in, width, height, box, kLanczos);
}

RgbImage resize_bicubic(const RgbImage& in, int width, int height, const ResizeBox& box) {
  return resample(in, width, height, box, kBicubic);
}

void paste(RgbImage& dst, const RgbImage& src, int x, int y) {
  const int x0 = std::max(x, 0), x1 = std::min(x + src.width, dst.width);
  const int y0 = std::max(y, 0), y1 = std::min(y + src.height, dst.height);
  if (x0 >= x1) return;
  for (int yy = y0; yy < y1; ++yy)
    std::memcpy(&dst.pixels[((size_t)yy * dst.width + x0) * 3], &src.pixels[((size_t)(yy - y) * src.width + (x0 - x)) * 3],
                (size_t)(x1 - x0) * 3);
}

RgbImage fit_image(const RgbImage& im, int width, int height, ResizeMode mode) {
  if (mode == ResizeMode::Just) return resize_lanczos(im, width, height);
  // Python's float ratios and floor divisions (all operands positive).
  const double ratio = (double)width / height, src_ratio = (double)im.width / im.height;
  const bool crop = mode == ResizeMode::Crop;
  const int fit_w = (int)((int64_t)im.width * height / im.height);  // the width at the target height
  const int fit_h = (int)((int64_t)im.height * width / im.width);
  // crop covers the size (the picture's wider side overhangs), fill fits inside it.
  const bool full_width = crop ? ratio > src_ratio : ratio < src_ratio;
  const bool full_height = crop ? ratio <= src_ratio : ratio >= src_ratio;
  const int src_w = full_width ? width : fit_w;
  const int src_h = full_height ? height : fit_h;
  if (src_w < 1 || src_h < 1)
    throw_usage("the picture (" + std::to_string(im.width) + "x" + std::to_string(im.height) +
                ") is too narrow to " + resize_mode_name(mode) + " into " + std::to_string(width) + "x" +
                std::to_string(height));
  const RgbImage resized = resize_lanczos(im, src_w, src_h);
  RgbImage res;
  res.width = width;
  res.height = height;
  res.pixels.assign((size_t)width * height * 3, 0);
  paste(res, resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
  if (crop) return res;
  if (ratio < src_ratio) {
    // The bands are Image.resize without a filter argument: PIL's default, bicubic.
    const int fill = height / 2 - src_h / 2;
    if (fill > 0) {
      paste(res, resize_bicubic(resized, width, fill, {0, 0, (double)width, 0}), 0, 0);
      paste(res, resize_bicubic(resized, width, fill, {0, (double)resized.height, (double)width, (double)resized.height}), 0,
            fill + src_h);
    }
  } else if (ratio > src_ratio) {
    const int fill = width / 2 - src_w / 2;
    if (fill > 0) {
      paste(res, resize_bicubic(resized, fill, height, {0, 0, 0, (double)height}), 0, 0);
      paste(res, resize_bicubic(resized, fill, height, {(double)resized.width, 0, (double)resized.width, (double)height}),
            fill + src_w, 0);
    }
  }
  return res;
}

}  // namespace sdgen
