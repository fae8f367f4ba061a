// The decoder half of diffusers' AutoencoderKL: latents -> image. The encoder (vae_encoder.h) is
// not needed for text-to-image and is loaded only on request.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "sdgen/config.h"
#include "unet/blocks.h"

namespace sdgen {

class VaeDecoder {
 public:
  // Loads "vae.post_quant_conv.*" and "vae.decoder.*", converted to dtype, onto device.
  VaeDecoder(const Checkpoint& ckpt, const VaeConfig& config, DType dtype, Device device);

  // latents [N,h,w,latent_channels] NHWC as the sampler leaves them (in the UNet's scaled space):
  // divided by scaling_factor here, as diffusers' pipeline does before vae.decode.
  // Returns the image [N,8h,8w,out_channels] (×2 per up level but the last), roughly in [-1, 1].
  // probe, when given, sees the intermediates under diffusers' module names ("post_quant_conv",
  // "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.i").
  using Probe = std::function<void(const std::string& name, const Tensor& value)>;
  Tensor decode(const Tensor& latents, const Probe& probe = nullptr) const;
  // The same without the scaling: z is what diffusers' AutoencoderKL.decode receives.
  Tensor decode_unscaled(const Tensor& z, const Probe& probe = nullptr) const;

  const VaeConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // The parts, named like the checkpoint; public so tests can run one block alone.
  // The mid block's single-head attention over the h*w pixels (diffusers Attention with
  // group_norm, residual_connection, rescale_output_factor 1).
  struct MidAttention {
    nn::GroupNorm group_norm;
    Attention attn;  // to_q, to_k, to_v, to_out.0, one head, biases on all four
    // x [N,H,W,C] -> x + attention over the H·W pixels of group_norm(x).
    Tensor operator()(const Tensor& x) const;
  };
  struct MidBlock {  // UNetMidBlock2D, the encoder's too
    std::vector<ResnetBlock2D> resnets;  // 2
    std::vector<MidAttention> attentions;  // 1
    // name: "vae.decoder.mid_block" or "vae.encoder.mid_block"; ch: the widest level's channels.
    static MidBlock load(const nn::WeightLoader& w, const std::string& name, int64_t ch, const VaeConfig& c);
    // x by value: a caller that moves its activation in lets it be freed after the first resnet.
    Tensor operator()(Tensor x) const;
  };
  struct UpBlock {  // UpDecoderBlock2D
    std::vector<ResnetBlock2D> resnets;
    std::vector<Upsample2D> upsamplers;  // empty in the last level
  };

  nn::Conv2d post_quant_conv;
  // decoder.*
  nn::Conv2d conv_in;
  MidBlock mid_block;
  std::vector<UpBlock> up_blocks;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;

 private:
  VaeConfig config_;
  DType dtype_;
  Device device_;
};

}  // namespace sdgen
