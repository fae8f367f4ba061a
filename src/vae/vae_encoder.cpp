// AutoencoderKL's encoder (vae_encoder.h), following diffusers' Encoder: conv_in, down blocks from
// the narrowest level up (resnets, then a downsampler in every level but the last), the mid block
// (resnet, attention, resnet), the output head (GroupNorm + SiLU, conv_out to 2·latent channels),
// then quant_conv; and DiagonalGaussianDistribution's sample on the host.
#include "vae/vae_encoder.h"

#include <algorithm>
#include <cmath>

#include "core/interrupt.h"
#include "sdgen/error.h"

namespace sdgen {

VaeEncoder::VaeEncoder(const Checkpoint& ckpt, const VaeConfig& config, DType dtype, Device device)
    : config_(config), dtype_(dtype), device_(device) {
  const VaeConfig& c = config_;
  SDGEN_CHECK(!c.block_channels.empty(), "VAE config: no block channels");
  // A dry pass (Device::Meta, pipeline/dry_run.h) builds from shapes alone: no file to ask.
  if (device != Device::Meta && (!ckpt.has("vae.encoder.conv_in.weight") || !ckpt.has("vae.quant_conv.weight")))
    throw_model(ckpt.name() + ": no VAE encoder (encoder.* and quant_conv.* tensors) to encode images with; "
                "a decoder-only VAE file cannot encode");
  const nn::WeightLoader w{ckpt, dtype, device};
  const std::vector<int>& ch = c.block_channels;
  const int64_t moments_ch = 2 * (int64_t)c.latent_channels;

  conv_in = nn::Conv2d(w, "vae.encoder.conv_in", c.in_channels, ch[0], 3);
  int64_t prev = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    const std::string name = "vae.encoder.down_blocks." + std::to_string(i);
    DownBlock b;
    for (int j = 0; j < c.layers_per_block; ++j)
      b.resnets.emplace_back(w, name + ".resnets." + std::to_string(j), j == 0 ? prev : ch[i], ch[i],
                             /*temb_channels=*/0, c.norm_groups, c.norm_eps);
    if (i + 1 < ch.size()) {
      Downsample d{nn::Conv2d(w, name + ".downsamplers.0.conv", ch[i], ch[i], 3, /*stride=*/2)};
      d.conv.padding = 0;  // the padding is ops::pad's, on two sides only
      b.downsamplers.push_back(std::move(d));
    }
    down_blocks.push_back(std::move(b));
    prev = ch[i];
  }
  mid_block = VaeDecoder::MidBlock::load(w, "vae.encoder.mid_block", ch.back(), c);
  conv_norm_out = nn::GroupNorm(w, "vae.encoder.conv_norm_out", ch.back(), c.norm_groups, c.norm_eps);
  conv_out = nn::Conv2d(w, "vae.encoder.conv_out", ch.back(), moments_ch, 3);
  quant_conv = nn::Conv2d(w, "vae.quant_conv", moments_ch, moments_ch, 1);
}

Tensor VaeEncoder::moments(const Tensor& image, const Probe& probe) const {
  auto show = [&](const std::string& name, const Tensor& t) {
    if (probe) probe(name, t);
  };
  const int f = downscale();
  if (image.ndim() != 4 || image.dim(3) != config_.in_channels || image.dim(1) % f != 0 || image.dim(2) % f != 0 ||
      image.dim(0) < 1 || image.dim(1) < f || image.dim(2) < f)
    throw_usage("VAE encoder input " + shape_str(image.shape()) + ": expected [N, H, W, " +
                std::to_string(config_.in_channels) + "] with H and W positive multiples of " + std::to_string(f));
  Tensor h = image.to(device_);
  if (h.dtype() != dtype_) h = ops::cast(h, dtype_);

  h = conv_in(h);
  show("encoder.conv_in", h);
  for (size_t i = 0; i < down_blocks.size(); ++i) {
    throw_if_interrupted("encoding");  // seconds per level on a CPU at 512²
    for (const ResnetBlock2D& r : down_blocks[i].resnets) h = r(h);
    for (const Downsample& d : down_blocks[i].downsamplers) h = d(h);
    show("encoder.down_blocks." + std::to_string(i), h);
  }
  h = mid_block(std::move(h));
  show("encoder.mid_block", h);
  h = conv_out(conv_norm_out(h, /*silu=*/true));
  h = quant_conv(h);
  show("quant_conv", h);
  if (h.dtype() != DType::F32) h = ops::cast(h, DType::F32);
  return device_ == Device::Meta ? h : h.to(Device::CPU);  // a dry pass (dry_run.h) has no values to download
}

Tensor vae_latent_sample(const Tensor& moments, const Tensor& noise) {
  SDGEN_CHECK(moments.defined() && moments.device() == Device::CPU && moments.dtype() == DType::F32 &&
                  moments.ndim() == 4 && moments.dim(3) % 2 == 0,
              "vae_latent_sample: moments must be fp32 host [N, h, w, 2C], got " + shape_str(moments.shape()));
  Shape out = moments.shape();
  const int64_t C = out[3] / 2;
  out[3] = C;
  if (noise.defined())
    SDGEN_CHECK(noise.device() == Device::CPU && noise.dtype() == DType::F32 && noise.shape() == out,
                "vae_latent_sample: noise " + shape_str(noise.shape()) + " must be fp32 host " + shape_str(out));
  Tensor z = Tensor::empty(out, DType::F32);
  const float* m = moments.f32();
  const float* e = noise.defined() ? noise.f32() : nullptr;
  float* y = z.f32();
  const int64_t pixels = z.numel() / std::max<int64_t>(C, 1);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < C; ++c) {
      const float mean = m[p * 2 * C + c];
      if (!e) {
        y[p * C + c] = mean;
        continue;
      }
      // torch: logvar.clamp(-30, 20); std = exp(0.5 * logvar); mean + std * noise, each op rounded
      // to fp32 (no fused multiply-add: the product is rounded before the sum).
      const float logvar = std::min(std::max(m[p * 2 * C + C + c], -30.0f), 20.0f);
      const float sd = std::exp(0.5f * logvar);
      volatile float scaled = sd * e[p * C + c];
      y[p * C + c] = mean + scaled;
    }
  return z;
}

}  // namespace sdgen
