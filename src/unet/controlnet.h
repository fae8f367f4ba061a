// ControlNet for SD v1.x, 2.x and SDXL, diffusers' ControlNetModel: a trainable copy of the UNet's encoder
// half that reads the latents plus an encoded control image (edges, depth, pose, ...) and returns one
// residual per UNet skip connection and one for its mid block, which the UNet adds (unet.h, UNetControl).
// An SDXL net has its own add_embedding of the pooled text and size ids, as the UNet does.
// Written once against ops.h; runs in the dtype and on the device its weights were loaded to.
// Weights under canonical names "controlnet.<diffusers name>" (io/controlnet_file.h).
#pragma once
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "sdgen/config.h"
#include "unet/unet.h"

namespace sdgen {

class ControlNet {
 public:
  ControlNet(const Checkpoint& ckpt, const ControlNetConfig& config, DType dtype, Device device);

  // The hint encoder (controlnet_cond_embedding) of control images [N, H, W, conditioning_channels]
  // with values in [0, 1] (H, W: the generation's size): [N, H/8, W/8, block_channels[0]] in the
  // model's dtype. It does not depend on the step, so the pipeline runs it once per generation.
  Tensor embed_condition(const Tensor& image) const;
  // The residuals, unscaled (the caller scales them per unit): x [N, h, w, 4] (the UNet's input, or
  // its conditional rows in guess mode), time_proj [N, block_channels[0]], context prepared by
  // prepare_context (SDXL: with its added conditioning from prepare_added), cond_embedding from
  // embed_condition with N rows. down: 1 + levels·layers +
  // (levels − 1) tensors, the UNet's skips' shapes; mid: the mid block's output's.
  ControlResiduals forward(const Tensor& x, const Tensor& time_proj, const CrossContext& context,
                           const Tensor& cond_embedding) const;
  // The cross-attentions' keys and values of context [N, L, cross_attention_dim] (UNet::prepare_context).
  CrossContext prepare_context(const Tensor& context) const;
  // SDXL: this net's add_embedding of the rows' pooled text and size ids (UNet::prepare_added).
  Tensor prepare_added(const Tensor& pooled, const std::vector<float>& time_ids) const;
  // How many residuals forward() returns for the down path (the mid block's comes on top).
  size_t down_residuals() const { return controlnet_down_blocks.size(); }
  const ControlNetConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }

  // The parts, named like the checkpoint.
  struct CondEmbedding {  // ControlNetConditioningEmbedding
    nn::Conv2d conv_in;
    std::vector<nn::Conv2d> blocks;  // per level: a 3x3 conv, then a stride-2 3x3 conv to the next's channels
    nn::Conv2d conv_out;
  };
  UNet::TimestepEmbedding time_embedding;
  UNet::TimestepEmbedding add_embedding;  // SDXL (UNetConfig::text_time), else empty
  nn::Conv2d conv_in;
  CondEmbedding controlnet_cond_embedding;
  std::vector<UNet::DownBlock> down_blocks;
  UNet::MidBlock mid_block;
  std::vector<nn::Conv2d> controlnet_down_blocks;  // 1x1, one per residual
  nn::Conv2d controlnet_mid_block;                 // 1x1

 private:
  ControlNetConfig config_;
  DType dtype_;
  Device device_;
};

// The units' conditioning scales (diffusers' StableDiffusionControlNetPipeline): for unit u of
// `units` and net k with scale s_k, s_k · keep(u), where keep(u) is 0 while u/units < start or
// (u+1)/units > end (control_guidance_start/end), else 1; in guess mode residual i of n+1 (the mid
// block's last) is further scaled by 10^(−1 + i/n) (torch.logspace(−1, 0, n+1)). Row-major
// [units, nets·(n+1)], net k's residual i in column k·(n+1) + i.
std::vector<float> control_scales(const std::vector<float>& net_scales, size_t down_residuals, int units,
                                  double start, double end, bool guess_mode);

}  // namespace sdgen
