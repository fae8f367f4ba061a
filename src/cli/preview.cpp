#include "cli/preview.h"

#include <algorithm>

#include "io/image_grid.h"
#include "io/png_writer.h"

namespace sdgen::cli {

namespace {
// A1111's cheap_approximation for SD v1 latents: rgb[r] = Σ_l latent[l]·kRgb[l][r].
constexpr float kRgb[4][3] = {
    {0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f}, {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};
}  // namespace

RgbImage approx_cheap(const float* x0, int h, int w) {
  RgbImage im;
  im.width = w;
  im.height = h;
  im.pixels.resize((size_t)w * h * 3);
  const size_t plane = (size_t)w * h;
  for (size_t p = 0; p < plane; ++p)
    for (int r = 0; r < 3; ++r) {
      float v = 0.0f;
      for (int l = 0; l < 4; ++l) v += x0[l * plane + p] * kRgb[l][r];
      v = std::clamp(v * 0.5f + 0.5f, 0.0f, 1.0f);
      im.pixels[p * 3 + r] = (uint8_t)(v * 255.0f);
    }
  return im;
}

void write_preview(const std::string& path, const std::vector<RgbImage>& pictures) {
  std::vector<const uint8_t*> cells;
  for (const RgbImage& im : pictures) cells.push_back(im.pixels.data());
  const RgbImage sheet = pictures.size() == 1 ? pictures[0] : compose_grid(cells, pictures[0].width, pictures[0].height);
  write_png(path, sheet.pixels.data(), sheet.width, sheet.height, "");
}

void write_preview(const std::string& path, const std::vector<float>& x0, int images, int h, int w) {
  std::vector<RgbImage> each;
  for (int i = 0; i < images; ++i) each.push_back(approx_cheap(x0.data() + (size_t)i * 4 * h * w, h, w));
  write_preview(path, each);
}

}  // namespace sdgen::cli
