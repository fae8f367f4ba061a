#include "pipeline/latent_upscale.h"

#include <algorithm>
#include <cmath>

#include "sdgen/error.h"

namespace sdgen {

namespace {

// One output coordinate's taps along one axis: source indices and their weights.
struct Taps {
  int index[4];
  float weight[4];
  int count;
};

// Keys' cubic convolution with A = −0.75 (torch's get_cubic_upsample_coefficients), at offset t.
void cubic_weights(float t, float* w) {
  const float A = -0.75f;
  auto near = [A](float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };           // |x| ≤ 1
  auto far = [A](float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };      // 1 < |x| < 2
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

std::vector<Taps> axis_taps(int in, int out, LatentUpscaleMode mode) {
  // torch's scale when only the size is given: in/out, in float (the kernels' opmath type).
  const float scale = (float)in / (float)out;
  std::vector<Taps> taps((size_t)out);
  for (int i = 0; i < out; ++i) {
    Taps& t = taps[(size_t)i];
    if (mode == LatentUpscaleMode::Nearest) {
      t.count = 1;
      t.index[0] = std::min((int)std::floor((float)i * scale), in - 1);
      t.weight[0] = 1.0f;
    } else if (mode == LatentUpscaleMode::Bilinear) {
      const float src = std::max(scale * ((float)i + 0.5f) - 0.5f, 0.0f);
      const int i0 = (int)src;
      const float l1 = std::min(src - (float)i0, 1.0f);
      t.count = 2;
      t.index[0] = i0;
      t.index[1] = i0 + (i0 < in - 1 ? 1 : 0);
      t.weight[0] = 1.0f - l1;
      t.weight[1] = l1;
    } else {
      const float src = scale * ((float)i + 0.5f) - 0.5f;
      const int i0 = (int)std::floor(src);
      t.count = 4;
      cubic_weights(src - (float)i0, t.weight);
      for (int k = 0; k < 4; ++k) t.index[k] = std::clamp(i0 - 1 + k, 0, in - 1);
    }
  }
  return taps;
}

}  // namespace

std::vector<float> upscale_latents(const std::vector<float>& x, int n, int c, int h, int w, int out_h, int out_w,
                                   LatentUpscaleMode mode) {
  if (n < 1 || c < 1 || h < 1 || w < 1 || out_h < 1 || out_w < 1 || x.size() != (size_t)n * c * h * w)
    throw_usage("upscale_latents: shape [" + std::to_string(n) + "," + std::to_string(c) + "," + std::to_string(h) +
                "," + std::to_string(w) + "] to " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                " does not fit " + std::to_string(x.size()) + " values");
  const std::vector<Taps> ty = axis_taps(h, out_h, mode), tx = axis_taps(w, out_w, mode);
  std::vector<float> out((size_t)n * c * out_h * out_w);
  for (int p = 0; p < n * c; ++p) {
    const float* src = x.data() + (size_t)p * h * w;
    float* dst = out.data() + (size_t)p * out_h * out_w;
    for (int oy = 0; oy < out_h; ++oy) {
      const Taps& a = ty[(size_t)oy];
      for (int ox = 0; ox < out_w; ++ox) {
        const Taps& b = tx[(size_t)ox];
        float sum = 0.0f;
        for (int j = 0; j < a.count; ++j) {
          const float* row = src + (size_t)a.index[j] * w;
          float r = 0.0f;
          for (int k = 0; k < b.count; ++k) r += b.weight[k] * row[b.index[k]];
          sum += a.weight[j] * r;
        }
        dst[(size_t)oy * out_w + ox] = sum;
      }
    }
  }
  return out;
}

}  // namespace sdgen
