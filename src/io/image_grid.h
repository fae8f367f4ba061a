// Contact sheets (--grid): A1111's image_grid layout. n images of one size w×h go in
// rows = round(sqrt(n)) rows (at most n) and cols = ceil(n / rows) columns, in order, row-major
// (image i at column i % cols, row i / cols); the sheet is cols·w × rows·h and the cells left over
// in the last row are black. No labels (drawing text needs a font renderer this project lacks).
#pragma once
#include <cstdint>
#include <vector>

#include "io/image_read.h"

namespace sdgen {

struct GridShape {
  int rows = 0, cols = 0;
};
GridShape grid_shape(int n);

// The sheet of `images` (each width·height·3 bytes, rows top to bottom). Throws Error(kInternal)
// for no image or images of different sizes.
RgbImage compose_grid(const std::vector<const uint8_t*>& images, int width, int height);

}  // namespace sdgen
