// The SD v1 denoiser, diffusers' UNet2DConditionModel: eps = UNet(x_t, t, text context).
// Written once against ops.h; runs in the dtype and on the device its weights were loaded to.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "sdgen/config.h"
#include "unet/blocks.h"

namespace sdgen {

class UNet {
 public:
  // Loads every "unet.*" tensor of the checkpoint, converted to dtype, onto device.
  UNet(const Checkpoint& ckpt, const UNetConfig& config, DType dtype, Device device);

  // x [N,h,w,in_channels] NHWC (h, w divisible by 2^(levels-1)); timesteps: N values (one per
  // sample, fractional allowed); context [N,L,cross_attention_dim]. Returns eps [N,h,w,out_channels]
  // in the model's dtype. Inputs in another dtype are cast first.
  // probe, when given, sees the named intermediate results as diffusers' modules produce them
  // ("time_proj", "time_embedding", "conv_in", "down_blocks.i", "mid_block", "up_blocks.i",
  // "conv_norm_out" before its SiLU), so tests can tell which block departs from the reference.
  using Probe = std::function<void(const std::string& name, const Tensor& value)>;
  Tensor forward(const Tensor& x, const std::vector<float>& timesteps, const Tensor& context,
                 const Probe& probe = nullptr) const;
  // The same with the sinusoidal timestep embedding given ("time_proj", [N, block_channels[0]]),
  // as the device-resident sampler makes it (ops::timestep_embedding_at).
  Tensor forward(const Tensor& x, const Tensor& time_proj, const Tensor& context,
                 const Probe& probe = nullptr) const;
  // The same with a prepared context (prepare_context): the cross-attentions' keys and values
  // computed once, outside the denoising loop.
  Tensor forward(const Tensor& x, const Tensor& time_proj, const CrossContext& context,
                 const Probe& probe = nullptr) const;
  // context [N, L, cross_attention_dim] in the model's dtype and on its device, with every
  // cross-attention's to_k and to_v of it.
  CrossContext prepare_context(const Tensor& context) const;

  const UNetConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // The parts, named like the checkpoint; public so tests can run one block alone.
  struct TimestepEmbedding {
    nn::Linear linear_1, linear_2;
  };
  struct DownBlock {  // CrossAttnDownBlock2D / DownBlock2D
    std::vector<ResnetBlock2D> resnets;
    std::vector<Transformer2DModel> attentions;  // empty in DownBlock2D
    std::vector<Downsample2D> downsamplers;      // empty in the last level
  };
  struct MidBlock {  // UNetMidBlock2DCrossAttn
    std::vector<ResnetBlock2D> resnets;  // 2
    std::vector<Transformer2DModel> attentions;  // 1
  };
  struct UpBlock {  // CrossAttnUpBlock2D / UpBlock2D
    std::vector<ResnetBlock2D> resnets;
    std::vector<Transformer2DModel> attentions;
    std::vector<Upsample2D> upsamplers;  // empty in the last level
  };

  TimestepEmbedding time_embedding;
  nn::Conv2d conv_in;
  std::vector<DownBlock> down_blocks;
  MidBlock mid_block;
  std::vector<UpBlock> up_blocks;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;

 private:
  UNetConfig config_;
  DType dtype_;
  Device device_;
};

}  // namespace sdgen
