// ControlNetModel (controlnet.h), as diffusers builds it: the UNet's time embedding (SDXL: plus its
// added embedding), conv_in and encoder half (shared loaders, unet.h), the conditioning embedding added
// to conv_in's output, and a 1x1 zero conv per residual.
#include "unet/controlnet.h"

#include <cmath>

#include "sdgen/error.h"

namespace sdgen {

using nn::join;

ControlNet::ControlNet(const Checkpoint& ckpt, const ControlNetConfig& config, DType dtype, Device device)
    : config_(config), dtype_(dtype), device_(device) {
  const nn::WeightLoader w{ckpt, dtype, device};
  const UNetConfig& c = config_.unet;
  const std::vector<int>& ch = c.block_channels;
  const std::vector<int>& hint = config_.conditioning_embedding_channels;
  SDGEN_CHECK(!ch.empty() && c.down_attention.size() == ch.size() && hint.size() == 4,
              "ControlNet config: levels (the hint encoder must downsample 8x: 4 levels)");
  time_embedding = UNet::TimestepEmbedding::load(w, "controlnet.time_embedding", c);
  add_embedding = UNet::TimestepEmbedding::load_added(w, "controlnet.add_embedding", c);
  conv_in = nn::Conv2d(w, "controlnet.conv_in", c.in_channels, ch[0], 3);

  CondEmbedding& e = controlnet_cond_embedding;
  e.conv_in = nn::Conv2d(w, "controlnet.controlnet_cond_embedding.conv_in", config_.conditioning_channels, hint[0], 3);
  for (size_t i = 0; i + 1 < hint.size(); ++i) {
    const std::string b = "controlnet.controlnet_cond_embedding.blocks.";
    e.blocks.emplace_back(w, b + std::to_string(2 * i), hint[i], hint[i], 3);
    e.blocks.emplace_back(w, b + std::to_string(2 * i + 1), hint[i], hint[i + 1], 3, /*stride=*/2);
  }
  e.conv_out = nn::Conv2d(w, "controlnet.controlnet_cond_embedding.conv_out", hint.back(), ch[0], 3);

  // The zero convs follow the skips: conv_in's output, then each level's resnets and downsampler.
  auto zero_conv = [&](int64_t channels) {
    controlnet_down_blocks.emplace_back(w, "controlnet.controlnet_down_blocks." +
                                               std::to_string(controlnet_down_blocks.size()),
                                        channels, channels, 1);
  };
  zero_conv(ch[0]);
  int64_t in = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    down_blocks.push_back(UNet::DownBlock::load(w, "controlnet.down_blocks." + std::to_string(i), c, i, in));
    in = ch[i];
    for (int j = 0; j < c.layers_per_block; ++j) zero_conv(ch[i]);
    if (i + 1 < ch.size()) zero_conv(ch[i]);
  }
  mid_block = UNet::MidBlock::load(w, "controlnet.mid_block", c);
  controlnet_mid_block = nn::Conv2d(w, "controlnet.controlnet_mid_block", ch.back(), ch.back(), 1);
}

Tensor ControlNet::embed_condition(const Tensor& image_in) const {
  Tensor image = image_in.to(device_);
  if (image.dtype() != dtype_) image = ops::cast(image, dtype_);
  SDGEN_CHECK(image.ndim() == 4 && image.dim(3) == config_.conditioning_channels && image.dim(1) % 8 == 0 &&
                  image.dim(2) % 8 == 0,
              "ControlNet: control image " + shape_str(image.shape()) + ", expected [N, H, W, " +
                  std::to_string(config_.conditioning_channels) + "] with H, W multiples of 8");
  const CondEmbedding& e = controlnet_cond_embedding;
  Tensor h = ops::silu(e.conv_in(image));
  for (const nn::Conv2d& conv : e.blocks) h = ops::silu(conv(h));
  return e.conv_out(h);
}

CrossContext ControlNet::prepare_context(const Tensor& context_in) const {
  std::vector<const std::vector<Transformer2DModel>*> groups;
  for (const UNet::DownBlock& b : down_blocks) groups.push_back(&b.attentions);
  groups.push_back(&mid_block.attentions);
  return make_cross_context(context_in, device_, dtype_, groups);
}

Tensor ControlNet::prepare_added(const Tensor& pooled, const std::vector<float>& time_ids) const {
  SDGEN_CHECK(config_.unet.text_time(), "ControlNet: this net takes no added conditioning");
  return add_embedding.added(config_.unet, dtype_, device_, pooled, time_ids);
}

ControlResiduals ControlNet::forward(const Tensor& x, const Tensor& time_proj, const CrossContext& context,
                                     const Tensor& cond_embedding) const {
  const int64_t n = x.dim(0);
  SDGEN_CHECK(x.ndim() == 4 && x.dim(3) == config_.unet.in_channels && x.dtype() == dtype_ &&
                  time_proj.ndim() == 2 && time_proj.dim(0) == n && context.hidden.dim(0) == n &&
                  cond_embedding.ndim() == 4 && cond_embedding.dim(0) == n && cond_embedding.dim(1) == x.dim(1) &&
                  cond_embedding.dim(2) == x.dim(2),
              "ControlNet: input " + shape_str(x.shape()) + " with time " + shape_str(time_proj.shape()) +
                  ", context " + shape_str(context.hidden.shape()) + ", control " + shape_str(cond_embedding.shape()));
  Tensor temb = time_embedding(time_proj);
  if (config_.unet.text_time()) {
    SDGEN_CHECK(context.added.defined() && context.added.dim(0) == n,
                "ControlNet: an SDXL net takes added conditioning (pooled text and size ids) for every row");
    temb = ops::add(temb, context.added);
  }
  const Tensor silu_temb = ops::silu(temb);
  Tensor h = conv_in(x, /*add=*/cond_embedding);  // diffusers: conv_in(sample) + controlnet_cond
  std::vector<Tensor> skips{h};
  for (const UNet::DownBlock& b : down_blocks) h = b(h, silu_temb, context, skips);
  h = mid_block(h, silu_temb, context);
  SDGEN_CHECK(skips.size() == controlnet_down_blocks.size(), "ControlNet: skips and zero convs differ");
  ControlResiduals r;
  for (size_t i = 0; i < skips.size(); ++i) r.down.push_back(controlnet_down_blocks[i](skips[i]));
  r.mid = controlnet_mid_block(h);
  return r;
}

std::vector<float> control_scales(const std::vector<float>& net_scales, size_t down_residuals, int units,
                                  double start, double end, bool guess_mode) {
  const size_t per = down_residuals + 1, cols = net_scales.size() * per;
  std::vector<float> table((size_t)units * cols);
  for (int u = 0; u < units; ++u) {
    // diffusers: 1.0 - float(i / len(timesteps) < start or (i + 1) / len(timesteps) > end)
    const bool off = (double)u / units < start || (double)(u + 1) / units > end;
    for (size_t k = 0; k < net_scales.size(); ++k)
      for (size_t i = 0; i < per; ++i) {
        // torch.logspace(-1, 0, n + 1) in float32: 10^(-1 + i/n)
        const float guess = guess_mode ? (float)std::pow(10.0, -1.0 + (double)i / (double)down_residuals) : 1.0f;
        table[(size_t)u * cols + k * per + i] = off ? 0.0f : net_scales[k] * guess;
      }
  }
  return table;
}

}  // namespace sdgen
