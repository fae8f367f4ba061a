// A1111's image_grid layout (image_grid.h).
#include "io/image_grid.h"

#include <cmath>
#include <cstring>

#include "sdgen/error.h"

namespace sdgen {

GridShape grid_shape(int n) {
  GridShape g;
  if (n <= 0) return g;
  // Python's round(sqrt(n)): the square root of an integer is never k + 1/2, so where Python rounds
  // half to even and lround half away from zero makes no difference.
  g.rows = (int)std::lround(std::sqrt((double)n));
  if (g.rows > n) g.rows = n;
  g.cols = (n + g.rows - 1) / g.rows;
  return g;
}

RgbImage compose_grid(const std::vector<const uint8_t*>& images, int width, int height) {
  if (images.empty() || width <= 0 || height <= 0) throw Error(ExitCode::kInternal, "compose_grid: no image");
  const GridShape g = grid_shape((int)images.size());
  RgbImage out;
  out.width = g.cols * width;
  out.height = g.rows * height;
  out.pixels.assign((size_t)out.width * out.height * 3, 0);
  const size_t row_bytes = (size_t)width * 3;
  for (size_t i = 0; i < images.size(); ++i) {
    const int cx = (int)i % g.cols, cy = (int)i / g.cols;
    for (int y = 0; y < height; ++y)
      std::memcpy(&out.pixels[(((size_t)cy * height + y) * out.width + (size_t)cx * width) * 3],
                  images[i] + (size_t)y * row_bytes, row_bytes);
  }
  return out;
}

}  // namespace sdgen
