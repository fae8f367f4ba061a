// The encoder half of diffusers' AutoencoderKL: image -> the moments of the latent Gaussian
// (images in: img2img, inpainting). Loaded only when a pipeline asks for it (ModelOptions::
// need_encoder): text-to-image never pays its memory.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "sdgen/config.h"
#include "unet/blocks.h"
#include "vae/vae.h"

namespace sdgen {

class VaeEncoder {
 public:
  // Loads "vae.encoder.*" and "vae.quant_conv.*", converted to dtype, onto device. A checkpoint
  // without them (a decoder-only VAE file) gives one line naming it (Error kModel).
  VaeEncoder(const Checkpoint& ckpt, const VaeConfig& config, DType dtype, Device device);

  // image [N,H,W,in_channels] NHWC in [-1, 1] (any device and dtype; H and W multiples of
  // downscale()) -> the moments [N,H/f,W/f,2·latent_channels] fp32 on the host: the mean's channels
  // first, then the log-variance's (after quant_conv, not clamped), as diffusers'
  // DiagonalGaussianDistribution receives them. probe, when given, sees the intermediates under
  // diffusers' module names ("encoder.conv_in", "encoder.down_blocks.i", "encoder.mid_block",
  // "quant_conv").
  using Probe = VaeDecoder::Probe;
  Tensor moments(const Tensor& image, const Probe& probe = nullptr) const;
  // The factor between image and latent size: 2 per level but the last (8 for SD).
  int downscale() const { return 1 << (int)(down_blocks.size() - 1); }

  const VaeConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // diffusers' VAE Downsample2D (padding=0): one zero row at the bottom and one zero column at the
  // right, then conv3x3 with stride 2 and no padding (not the UNet's symmetric padding 1).
  struct Downsample {
    nn::Conv2d conv;
    Tensor operator()(const Tensor& x) const { return conv(ops::pad(x, 0, 1, 0, 1)); }
  };
  struct DownBlock {  // DownEncoderBlock2D
    std::vector<ResnetBlock2D> resnets;
    std::vector<Downsample> downsamplers;  // empty in the last level
  };

  // The parts, named like the checkpoint; public so tests can run one block alone.
  // encoder.*
  nn::Conv2d conv_in;
  std::vector<DownBlock> down_blocks;
  VaeDecoder::MidBlock mid_block;  // the decoder's UNetMidBlock2D: resnet, attention, resnet
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;  // 2·latent_channels outputs (double_z)
  nn::Conv2d quant_conv;

 private:
  VaeConfig config_;
  DType dtype_;
  Device device_;
};

// diffusers' DiagonalGaussianDistribution on the host in fp32: logvar clamped to [-30, 20],
// std = exp(0.5·logvar), latents = mean + std·noise, each step rounded to fp32 as torch does.
// moments [N,h,w,2C] fp32 host (VaeEncoder::moments); noise [N,h,w,C] fp32 host as drawn by the
// caller, or undefined for the mean (the mode). The result [N,h,w,C] fp32 host is NOT yet multiplied
// by scaling_factor.
Tensor vae_latent_sample(const Tensor& moments, const Tensor& noise);

}  // namespace sdgen
