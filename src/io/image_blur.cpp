#include "io/image_blur.h"

#include <algorithm>
#include <cmath>

namespace sdgen {

float extended_box_radius(float sigma, int passes) {
  // Variance of one pass; the box length L of that variance (equation 7 of the paper), its integer
  // radius l (11) and the fraction a that makes up the rest of the variance (14).
  const float var = sigma * sigma / (float)passes;
  const float length = (float)std::sqrt(12.0 * var + 1.0);
  const float l = (float)std::floor((length - 1.0) / 2.0);
  float a = (2 * l + 1) * (l * (l + 1) - 3 * var);
  a /= 6 * (var - (l + 1) * (l + 1));
  return l + a;
}

namespace {

// One extended-box pass over n values spaced `stride` apart (a row or a column), in place. The
// window of integer radius r gets weight `inner` per pixel, its two neighbours `outer`; positions
// outside the line take the nearest edge value. Sums are exact integers, so a running window gives
// what a direct sum gives.
void box_line(uint8_t* line, int n, size_t stride, int r, uint32_t inner, uint32_t outer, std::vector<uint8_t>& tmp) {
  tmp.resize((size_t)n);
  for (int i = 0; i < n; ++i) tmp[(size_t)i] = line[(size_t)i * stride];
  auto at = [&](int i) -> uint32_t { return tmp[(size_t)std::clamp(i, 0, n - 1)]; };
  uint32_t sum = 0;
  for (int i = -r; i <= r; ++i) sum += at(i);
  for (int x = 0; x < n; ++x) {
    const uint32_t v = sum * inner + (at(x - r - 1) + at(x + r + 1)) * outer;
    line[(size_t)x * stride] = (uint8_t)((v + (1u << 23)) >> 24);
    sum += at(x + r + 1) - at(x - r);
  }
}

}  // namespace

std::vector<uint8_t> gaussian_blur_grey(const std::vector<uint8_t>& grey, int width, int height, float radius) {
  std::vector<uint8_t> out = grey;
  if (radius == 0.0f) return out;
  constexpr int kPasses = 3;
  const float box = extended_box_radius(radius, kPasses);
  if (box == 0.0f) return out;  // Pillow skips an axis whose box radius is 0
  const int r = (int)box;
  // 24-bit weights: the window's pixels share 1/(2·box + 1) (float division, truncated), the two
  // outer pixels split what is left of 2^24.
  const uint32_t inner = (uint32_t)((float)(1 << 24) / (box * 2 + 1));
  const uint32_t outer = ((1u << 24) - (uint32_t)(r * 2 + 1) * inner) / 2;
  std::vector<uint8_t> tmp;
  for (int pass = 0; pass < kPasses; ++pass)
    for (int y = 0; y < height; ++y) box_line(out.data() + (size_t)y * width, width, 1, r, inner, outer, tmp);
  for (int pass = 0; pass < kPasses; ++pass)
    for (int x = 0; x < width; ++x) box_line(out.data() + x, height, (size_t)width, r, inner, outer, tmp);
  return out;
}

std::vector<uint8_t> grey_of(const RgbImage& im) {
  std::vector<uint8_t> out((size_t)im.width * im.height);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t r = im.pixels[3 * i], g = im.pixels[3 * i + 1], b = im.pixels[3 * i + 2];
    out[i] = (uint8_t)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
  }
  return out;
}

RgbImage rgb_of_grey(const std::vector<uint8_t>& grey, int width, int height) {
  RgbImage im;
  im.width = width, im.height = height;
  im.pixels.resize(grey.size() * 3);
  for (size_t i = 0; i < grey.size(); ++i) im.pixels[3 * i] = im.pixels[3 * i + 1] = im.pixels[3 * i + 2] = grey[i];
  return im;
}

bool mask_is_empty(const std::vector<uint8_t>& mask) {
  return std::all_of(mask.begin(), mask.end(), [](uint8_t v) { return v == 0; });
}

}  // namespace sdgen
