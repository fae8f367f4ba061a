// Mirrors the module structure of src/text/clip.cpp, src/unet/unet.cpp and src/vae/vae.cpp (which
// follow diffusers/transformers), layer by layer, so a config change moves the count with the model.
#include "pipeline/flops.h"

#include <cstdint>
#include <vector>

namespace sdgen {

namespace {

double conv(double hw, double cin, double cout, int k) { return 2.0 * hw * cin * cout * k * k; }
double linear(double rows, double in, double out) { return 2.0 * rows * in * out; }
// Q·Kᵀ and P·V over all heads: heads × 2 × (2·Lq·Lk·Dhead) = 4·Lq·Lk·D.
double attention(double lq, double lk, double dim) { return 4.0 * lq * lk * dim; }

// ResnetBlock2D: conv3×3, (time projection), conv3×3, a 1×1 shortcut when channels change.
double resnet(double hw, int in, int out, int temb) {
  double f = conv(hw, in, out, 3) + conv(hw, out, out, 3);
  if (temb > 0) f += linear(1, temb, out);
  if (in != out) f += conv(hw, in, out, 1);
  return f;
}

// Transformer2DModel with one BasicTransformerBlock: proj_in, self-attention (q, k, v, out over
// the hw tokens), cross-attention (q and out over hw tokens, k and v over the context), the GEGLU
// feed-forward (dim → 8·dim, gated to 4·dim → dim), proj_out.
double transformer(double hw, int c, int ctx_len, int cross_dim) {
  const double self_attn = 4 * linear(hw, c, c) + attention(hw, hw, c);
  const double cross_attn = 2 * linear(hw, c, c) + 2 * linear(ctx_len, cross_dim, c) + attention(hw, ctx_len, c);
  const double ff = linear(hw, c, 8.0 * c) + linear(hw, 4.0 * c, c);
  return linear(hw, c, c) + self_attn + cross_attn + ff + linear(hw, c, c);
}

}  // namespace

double clip_flops(const ClipConfig& c, int sequences) {
  const double L = c.max_positions, d = c.hidden;
  const double layer = 4 * linear(L, d, d) + attention(L, L, d) + linear(L, d, c.intermediate) +
                       linear(L, c.intermediate, d);
  return sequences * c.layers * layer;
}

double unet_flops(const UNetConfig& c, int batch, int latent_h, int latent_w, int context_len) {
  const std::vector<int>& ch = c.block_channels;
  const size_t levels = ch.size();
  const int temb = c.time_embed_dim();
  const int cross = c.cross_attention_dim;
  double hw = (double)latent_h * latent_w;
  // Per image: time embedding MLP, conv_in.
  double f = linear(1, ch[0], temb) + linear(1, temb, temb) + conv(hw, c.in_channels, ch[0], 3);

  int out = ch[0];
  for (size_t i = 0; i < levels; ++i) {
    const int in = out;
    out = ch[i];
    for (int j = 0; j < c.layers_per_block; ++j) {
      f += resnet(hw, j == 0 ? in : out, out, temb);
      if (c.down_attention[i]) f += transformer(hw, out, context_len, cross);
    }
    if (i + 1 < levels) {
      hw /= 4;  // a stride-2 3×3 conv: computed at the output resolution
      f += conv(hw, out, out, 3);
    }
  }

  const int mid = ch.back();
  f += 2 * resnet(hw, mid, mid, temb) + transformer(hw, mid, context_len, cross);

  // Up level i mirrors down level L-1-i; resnet j takes the running path plus one skip (unet.cpp).
  int prev = mid;
  for (size_t i = 0; i < levels; ++i) {
    const size_t level = levels - 1 - i;
    const int out_ch = ch[level];
    const int below = ch[level == 0 ? 0 : level - 1];
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const int skip = j == c.layers_per_block ? below : out_ch;
      const int in = (j == 0 ? prev : out_ch) + skip;
      f += resnet(hw, in, out_ch, temb);
      if (c.down_attention[level]) f += transformer(hw, out_ch, context_len, cross);
    }
    if (i + 1 < levels) {
      hw *= 4;  // nearest 2× upsampling, then a 3×3 conv at the new resolution
      f += conv(hw, out_ch, out_ch, 3);
    }
    prev = out_ch;
  }
  f += conv(hw, ch[0], c.out_channels, 3);
  return batch * f;
}

double vae_decoder_flops(const VaeConfig& c, int images, int height, int width) {
  const std::vector<int> ch(c.block_channels.rbegin(), c.block_channels.rend());  // decoder order
  double hw = (double)(height / 8) * (width / 8);
  double f = conv(hw, c.latent_channels, c.latent_channels, 1) + conv(hw, c.latent_channels, ch[0], 3);
  // Mid block: resnet, single-head self-attention over every latent pixel, resnet.
  f += 2 * resnet(hw, ch[0], ch[0], 0) + 4 * linear(hw, ch[0], ch[0]) + attention(hw, hw, ch[0]);
  int prev = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    for (int j = 0; j <= c.layers_per_block; ++j) f += resnet(hw, j == 0 ? prev : ch[i], ch[i], 0);
    if (i + 1 < ch.size()) {
      hw *= 4;
      f += conv(hw, ch[i], ch[i], 3);
    }
    prev = ch[i];
  }
  f += conv(hw, ch.back(), c.out_channels, 3);
  return images * f;
}

WorkloadFlops workload_flops(const ModelConfig& m, int batch, int width, int height, int steps,
                             float guidance) {
  WorkloadFlops w;
  const bool cfg = guidance > 1.0f;  // as the pipeline: the unconditional half only then
  w.text_sequences = cfg ? 2 : 1;
  w.unet_batch = cfg ? 2 * batch : batch;
  w.clip = clip_flops(m.clip, w.text_sequences);
  w.unet_per_step = unet_flops(m.unet, w.unet_batch, height / 8, width / 8, m.clip.max_positions);
  w.vae = vae_decoder_flops(m.vae, batch, height, width);
  w.total = w.clip + steps * w.unet_per_step + w.vae;
  return w;
}

}  // namespace sdgen
