// AutoencoderKL's decoder (vae.h), following diffusers' Decoder: post_quant_conv, conv_in, mid
// block (resnet, attention, resnet), up blocks from the widest level down, output head.
#include "vae/vae.h"

#include "core/interrupt.h"
#include "sdgen/error.h"

namespace sdgen {

VaeDecoder::VaeDecoder(const Checkpoint& ckpt, const VaeConfig& config, DType dtype,
                       Device device)
    : config_(config), dtype_(dtype), device_(device) {
  const nn::WeightLoader w{ckpt, dtype, device};
  const VaeConfig& c = config_;
  SDGEN_CHECK(!c.block_channels.empty(), "VAE config: no block channels");
  const std::vector<int> ch(c.block_channels.rbegin(), c.block_channels.rend());  // decoder order
  auto resnet = [&](const std::string& name, int64_t in, int64_t out) {
    return ResnetBlock2D(w, name, in, out, /*temb_channels=*/0, c.norm_groups, c.norm_eps);
  };

  post_quant_conv = nn::Conv2d(w, "vae.post_quant_conv", c.latent_channels, c.latent_channels, 1);
  conv_in = nn::Conv2d(w, "vae.decoder.conv_in", c.latent_channels, ch[0], 3);

  mid_block = MidBlock::load(w, "vae.decoder.mid_block", ch[0], c);

  int64_t prev = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    const std::string name = "vae.decoder.up_blocks." + std::to_string(i);
    UpBlock b;
    for (int j = 0; j <= c.layers_per_block; ++j)
      b.resnets.push_back(resnet(name + ".resnets." + std::to_string(j), j == 0 ? prev : ch[i], ch[i]));
    if (i + 1 < ch.size()) b.upsamplers.emplace_back(w, name + ".upsamplers.0", ch[i]);
    up_blocks.push_back(std::move(b));
    prev = ch[i];
  }

  conv_norm_out =
      nn::GroupNorm(w, "vae.decoder.conv_norm_out", ch.back(), c.norm_groups, c.norm_eps);
  conv_out = nn::Conv2d(w, "vae.decoder.conv_out", ch.back(), c.out_channels, 3);
}

VaeDecoder::MidBlock VaeDecoder::MidBlock::load(const nn::WeightLoader& w, const std::string& name, int64_t ch,
                                                const VaeConfig& c) {
  MidBlock m;
  m.resnets.emplace_back(w, name + ".resnets.0", ch, ch, /*temb_channels=*/0, c.norm_groups, c.norm_eps);
  m.attentions.push_back(MidAttention{
      nn::GroupNorm(w, name + ".attentions.0.group_norm", ch, c.norm_groups, c.norm_eps),
      Attention(w, name + ".attentions.0", ch, ch, /*heads=*/1, /*qkv_bias=*/true)});
  m.resnets.emplace_back(w, name + ".resnets.1", ch, ch, /*temb_channels=*/0, c.norm_groups, c.norm_eps);
  return m;
}

Tensor VaeDecoder::MidAttention::operator()(const Tensor& x) const {
  const Shape image = x.shape();
  Tensor seq = group_norm(x).reshape({image[0], image[1] * image[2], image[3]});
  return attn(seq, Tensor(), /*residual=*/x.reshape(seq.shape())).reshape(image);
}

Tensor VaeDecoder::MidBlock::operator()(Tensor h) const {
  // Each output replaces its input, so no activation outlives the block that reads it.
  h = resnets[0](h);
  h = attentions[0](h);
  return resnets[1](h);
}

Tensor VaeDecoder::decode(const Tensor& latents, const Probe& probe) const {
  Tensor z = latents.to(device_);
  if (z.dtype() != dtype_) z = ops::cast(z, dtype_);
  return decode_unscaled(ops::scale(z, 1.0f / config_.scaling_factor), probe);
}

Tensor VaeDecoder::decode_unscaled(const Tensor& z_in, const Probe& probe) const {
  auto show = [&](const std::string& name, const Tensor& t) {
    if (probe) probe(name, t);
  };
  if (z_in.ndim() != 4 || z_in.dim(3) != config_.latent_channels)
    throw_usage("VAE input " + shape_str(z_in.shape()) + ": expected [N, h, w, " +
                std::to_string(config_.latent_channels) + "]");
  Tensor z = z_in.to(device_);
  if (z.dtype() != dtype_) z = ops::cast(z, dtype_);

  Tensor h = post_quant_conv(z);
  show("post_quant_conv", h);
  h = conv_in(h);
  show("decoder.conv_in", h);

  h = mid_block(std::move(h));  // moved: the conv_in output is freed after the first resnet
  show("decoder.mid_block", h);

  for (size_t i = 0; i < up_blocks.size(); ++i) {
    // A decode at 1024² takes seconds on a CPU: a stop request is honoured between blocks.
    throw_if_interrupted("decoding");
    for (const ResnetBlock2D& r : up_blocks[i].resnets) h = r(h);
    for (const Upsample2D& u : up_blocks[i].upsamplers) h = u(h);
    show("decoder.up_blocks." + std::to_string(i), h);
  }
  return conv_out(conv_norm_out(h, /*silu=*/true));
}

}  // namespace sdgen
