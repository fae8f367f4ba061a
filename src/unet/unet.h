// The denoiser of SD v1, 2.x and SDXL, diffusers' UNet2DConditionModel: eps = UNet(x_t, t, text context
// [, SDXL's added conditioning]).
// Written once against ops.h; runs in the dtype and on the device its weights were loaded to.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "sdgen/config.h"
#include "unet/blocks.h"

namespace sdgen {

// ControlNet residuals for one UNet call (unet/controlnet.h): per net, one tensor per skip connection
// (in the order the down path pushes them) and one for the mid block's output, each added at its unit's
// scale (ops::add_scaled_at: column first_column + i of `scales`, the mid block's after the skips')
// to the UNet's rows from row_offset on (guess mode: the conditional half only).
struct ControlResiduals {
  std::vector<Tensor> down;
  Tensor mid;
  int64_t row_offset = 0;
  int64_t first_column = 0;
};
struct UNetControl {
  std::vector<ControlResiduals> nets;
  Tensor scales;  // [S, columns] fp32: the units' conditioning scales
  Tensor step;    // [1] fp32: the unit
};

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
  // With control (optional), ControlNet residuals are added to the skips and the mid block's output.
  Tensor forward(const Tensor& x, const Tensor& time_proj, const CrossContext& context,
                 const Probe& probe = nullptr, const UNetControl* control = nullptr) const;
  // context [N, L, cross_attention_dim] in the model's dtype and on its device, with every
  // cross-attention's to_k and to_v of it.
  CrossContext prepare_context(const Tensor& context) const;
  // SDXL's added conditioning of every row ([n, time_embed_dim] in the model's dtype on its device,
  // CrossContext::added): add_embedding of the pooled text embedding ([n, pooled width]) followed by
  // the sinusoidal embeddings of the row's size ids (time_ids: n × 6, diffusers' add_time_ids:
  // original size h, w; crop top, left; target size h, w).
  Tensor prepare_added(const Tensor& pooled, const std::vector<float>& time_ids) const;

  const UNetConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // The parts, named like the checkpoint; public so tests can run one block alone.
  // The encoder half's parts are shared with ControlNet (unet/controlnet.h), which loads them from its
  // own names with these loaders.
  struct TimestepEmbedding {
    nn::Linear linear_1, linear_2;
    static TimestepEmbedding load(const nn::WeightLoader& w, const std::string& name, const UNetConfig& c);
    // SDXL's add_embedding (addition_embed_input_dim -> time_embed_dim), empty unless c.text_time().
    static TimestepEmbedding load_added(const nn::WeightLoader& w, const std::string& name, const UNetConfig& c);
    Tensor operator()(const Tensor& time_proj) const { return linear_2(ops::silu(linear_1(time_proj))); }
    // prepare_added through this add_embedding of config c (the UNet's, or an SDXL ControlNet's own).
    Tensor added(const UNetConfig& c, DType dtype, Device device, const Tensor& pooled,
                 const std::vector<float>& time_ids) const;
  };
  struct DownBlock {  // CrossAttnDownBlock2D / DownBlock2D
    std::vector<ResnetBlock2D> resnets;
    std::vector<Transformer2DModel> attentions;  // empty in DownBlock2D
    std::vector<Downsample2D> downsamplers;      // empty in the last level
    // Level `level` of c, its input `in` channels.
    static DownBlock load(const nn::WeightLoader& w, const std::string& name, const UNetConfig& c, size_t level,
                          int64_t in);
    // h through the block; every resnet (+ attention) output and the downsampler's go onto skips.
    Tensor operator()(Tensor h, const Tensor& silu_temb, const CrossContext& context,
                      std::vector<Tensor>& skips) const;
  };
  struct MidBlock {  // UNetMidBlock2DCrossAttn
    std::vector<ResnetBlock2D> resnets;  // 2
    std::vector<Transformer2DModel> attentions;  // 1
    static MidBlock load(const nn::WeightLoader& w, const std::string& name, const UNetConfig& c);
    Tensor operator()(const Tensor& h, const Tensor& silu_temb, const CrossContext& context) const {
      return resnets[1](attentions[0](resnets[0](h, silu_temb), context), silu_temb);
    }
  };
  struct UpBlock {  // CrossAttnUpBlock2D / UpBlock2D
    std::vector<ResnetBlock2D> resnets;
    std::vector<Transformer2DModel> attentions;
    std::vector<Upsample2D> upsamplers;  // empty in the last level
  };

  TimestepEmbedding time_embedding;
  TimestepEmbedding add_embedding;  // SDXL (UNetConfig::text_time), else empty
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
