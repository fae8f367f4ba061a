#include "pipeline/inpaint_area.h"

#include <algorithm>

#include "io/image_blur.h"
#include "io/image_resize.h"
#include "sdgen/error.h"

namespace sdgen {

namespace {

// Grows [lo, hi) by `grow` (half before, the rest after), then shifts it back inside [0, n) as
// get_crop_region does (a box longer than n ends up as [0, n)).
void grow_span(int& lo, int& hi, int grow, int n) {
  lo -= grow / 2;
  hi += grow - grow / 2;
  if (hi >= n) {
    lo -= hi - n;
    hi = n;
  }
  if (lo < 0) {
    hi -= lo;
    lo = 0;
  }
  hi = std::min(hi, n);
}

}  // namespace

CropBox mask_crop_region(const std::vector<uint8_t>& mask, int mw, int mh, int width, int height, int pad) {
  int left = mw, right = -1, top = mh, bottom = -1;  // the non-zero bytes' bounds, inclusive
  for (int y = 0; y < mh; ++y)
    for (int x = 0; x < mw; ++x)
      if (mask[(size_t)y * mw + x]) {
        left = std::min(left, x), right = std::max(right, x);
        top = std::min(top, y), bottom = std::max(bottom, y);
      }
  if (right < 0) return {};
  CropBox b{std::max(left - pad, 0), std::max(top - pad, 0), std::min(right + 1 + pad, mw),
            std::min(bottom + 1 + pad, mh)};
  // Python's float ratios and int() truncation of the missing length.
  const double box_ratio = (double)(b.x2 - b.x1) / (double)(b.y2 - b.y1);
  const double ratio = (double)width / (double)height;
  if (box_ratio > ratio) {
    const double want = (double)(b.x2 - b.x1) / ratio;
    grow_span(b.y1, b.y2, (int)(want - (b.y2 - b.y1)), mh);
  } else {
    const double want = (double)(b.y2 - b.y1) * ratio;
    grow_span(b.x1, b.x2, (int)(want - (b.x2 - b.x1)), mw);
  }
  return b;
}

RgbImage crop_image(const RgbImage& im, const CropBox& box) {
  RgbImage out;
  out.width = box.x2 - box.x1, out.height = box.y2 - box.y1;
  out.pixels.resize((size_t)out.width * out.height * 3);
  for (int y = 0; y < out.height; ++y)
    std::copy_n(im.pixels.begin() + (ptrdiff_t)((((size_t)(y + box.y1) * im.width) + box.x1) * 3),
                (size_t)out.width * 3, out.pixels.begin() + (ptrdiff_t)((size_t)y * out.width * 3));
  return out;
}

namespace {

uint32_t div255(uint32_t v) {  // Pillow's rounded division by 255
  v += 128;
  return ((v >> 8) + v) >> 8;
}

// One channel of apply_overlay: the picture's value c premultiplied by its alpha k = 255 − mask
// (paste through the inverted mask onto transparent black, an RGBa picture), unpremultiplied
// (convert to RGBA, truncating), then composited over the opaque generated value g with 7 bits of
// coefficient precision (alpha_composite).
uint8_t overlay_channel(uint32_t c, uint32_t g, uint32_t k) {
  if (k == 0) return (uint8_t)g;  // a transparent source leaves the destination
  uint32_t src = div255(c * k);
  if (k != 255) src = std::min<uint32_t>(255 * src / k, 255);
  constexpr uint32_t kBits = 7;
  const uint32_t outa = k * 255 + 255 * (255 - k);
  const uint32_t coef1 = k * 255 * 255 * (1u << kBits) / outa;
  const uint32_t coef2 = 255 * (1u << kBits) - coef1;
  uint32_t v = src * coef1 + g * coef2 + (0x80u << kBits);
  v = ((v >> 8) + v) >> 8;
  return (uint8_t)(v >> kBits);
}

}  // namespace

RgbImage overlay_inpainted(const std::vector<uint8_t>& mask, const RgbImage& init, const RgbImage& generated,
                           const CropBox& box) {
  RgbImage base;
  base.width = init.width, base.height = init.height;
  base.pixels.assign(init.pixels.size(), 0);
  paste(base, fit_image(generated, box.x2 - box.x1, box.y2 - box.y1, ResizeMode::Crop), box.x1, box.y1);
  for (size_t i = 0; i < mask.size(); ++i)
    for (int c = 0; c < 3; ++c)
      base.pixels[3 * i + c] = overlay_channel(init.pixels[3 * i + c], base.pixels[3 * i + c], 255u - mask[i]);
  return base;
}

void fill_with_latent_noise(const std::vector<float>& fill, const std::vector<float>& z, const std::vector<float>& grid,
                            float a, float b, bool pure_noise, std::vector<float>& x0, std::vector<float>& x) {
  const size_t hw = grid.size();
  for (size_t i = 0; i < x0.size(); ++i) {
    if (grid[i % hw] != 1.0f) continue;
    x0[i] = fill[i];
    if (pure_noise) continue;
    const float ax = a * fill[i];  // each product rounded to float, then the sum, as add_noise
    const float bz = b * z[i];
    x[i] = ax + bz;
  }
}

GeneratedBatch generate_inpaint_area(Pipeline& pipe, const GenerateParams& p, const Pipeline::StepCallback& on_step) {
  const RgbImage& im = *p.init_image;
  if (p.mask->width != im.width || p.mask->height != im.height)
    throw_usage("the mask is " + std::to_string(p.mask->width) + "x" + std::to_string(p.mask->height) +
                ", the init image " + std::to_string(im.width) + "x" + std::to_string(im.height));
  const int mw = im.width, mh = im.height;
  const std::vector<uint8_t> grey = gaussian_blur_grey(grey_of(*p.mask), mw, mh, (float)p.mask_blur);
  GenerateParams inner = p;
  inner.mask_blur = 0;
  inner.inpaint_masked = false;
  inner.mask = std::make_shared<const RgbImage>(rgb_of_grey(grey, mw, mh));
  if (!p.inpaint_masked) return pipe.generate(inner, on_step);

  const CropBox box = mask_crop_region(grey, mw, mh, p.width, p.height, p.inpaint_padding);
  if (box.x2 <= box.x1 || box.y2 <= box.y1)
    throw_usage("the mask is all black: --inpaint-area masked has no region to repaint");
  auto cut = [&](const RgbImage& full) {
    return std::make_shared<const RgbImage>(fit_image(crop_image(full, box), p.width, p.height, ResizeMode::Fill));
  };
  inner.init_image = cut(im);
  inner.mask = cut(*inner.mask);
  GeneratedBatch out = pipe.generate(inner, on_step);
  for (std::vector<uint8_t>& pixels : out.images) {
    RgbImage g;
    g.width = out.width, g.height = out.height, g.pixels = std::move(pixels);
    pixels = overlay_inpainted(grey, im, g, box).pixels;
  }
  out.width = mw, out.height = mh;
  return out;
}

}  // namespace sdgen
