// The decoder's image as 8-bit pixels (ops::image_to_u8) on the host: the numeric truth of the
// device kernel in kernels/image.cu. One path serves plain and fast (it is a single pass).
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"

namespace sdgen::cpu {

void image_to_u8(const Tensor& x, Tensor& out) {
  const float* v = x.f32();
  uint8_t* o = out.data_as<uint8_t>();
  const int64_t n = x.numel();
  for (int64_t k = 0; k < n; ++k) {
    // diffusers: (x / 2 + 0.5).clamp(0, 1) in float32, then numpy (x * 255).round() — round half
    // to even, which nearbyint does in the default rounding mode.
    float y = v[k] / 2.0f + 0.5f;
    y = std::min(std::max(y, 0.0f), 1.0f);
    o[k] = (uint8_t)std::nearbyint(y * 255.0f);
  }
}

}  // namespace sdgen::cpu
