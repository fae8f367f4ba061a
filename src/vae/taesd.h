// The tiny autoencoder TAESD (diffusers AutoencoderTiny): convolutions and ReLUs, no norms and no
// attention; a fast stand-in for AutoencoderKL (--vae-tiny). Weights as io/taesd_file.h serves them,
// "taesd.decoder.layers.K.*" / "taesd.encoder.layers.K.*" (diffusers' nn.Sequential indices).
#pragma once
#include <vector>

#include "io/checkpoint.h"
#include "nn/nn.h"
#include "sdgen/config.h"

namespace sdgen {

// AutoencoderTinyBlock: relu(conv.4(relu(conv.2(relu(conv.0(x))))) + skip(x)); skip is a 1x1 conv
// without bias when the channels change, else x itself (weight undefined).
struct TaesdBlock {
  nn::Conv2d conv0, conv2, conv4;
  nn::Conv2d skip;
  TaesdBlock(const nn::WeightLoader& w, const std::string& name, int64_t in, int64_t out);
  Tensor operator()(const Tensor& x) const;
};

class TaesdDecoder {
 public:
  TaesdDecoder(const Checkpoint& ckpt, const TaesdConfig& config, DType dtype, Device device);
  // latents [N,h,w,latent_channels] as the sampler leaves them (any device and dtype): divided by
  // scaling_factor (1 for TAESD), as diffusers' pipeline does, then DecoderTiny: tanh(x/3)·3, the
  // layers, then ·2 − 1. Returns the image [N, f·h, f·w, out_channels] roughly in [-1, 1].
  Tensor decode(const Tensor& latents) const;
  int upscale() const { return 1 << (int)(levels.size() - 1); }

  const TaesdConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  struct Level {
    std::vector<TaesdBlock> blocks;
    nn::Conv2d conv;  // after the ×2 upsampling in every level but the last; the last has a bias
  };
  nn::Conv2d conv_in;  // layers.0 (layers.1 is its ReLU)
  std::vector<Level> levels;

 private:
  TaesdConfig config_;
  DType dtype_;
  Device device_;
};

class TaesdEncoder {
 public:
  // A file without the encoder's tensors gives one line naming it (Error kModel).
  TaesdEncoder(const Checkpoint& ckpt, const TaesdConfig& config, DType dtype, Device device);
  // image [N,H,W,in_channels] in [-1, 1] (any device and dtype; H, W multiples of downscale()) ->
  // EncoderTiny's latents [N,H/f,W/f,latent_channels] fp32 on the host: (x+1)/2, the layers. As
  // AutoencoderTiny.encode, no sampling; not yet multiplied by scaling_factor.
  Tensor encode(const Tensor& image) const;
  int downscale() const { return 1 << (int)(levels.size() - 1); }

  const TaesdConfig& config() const { return config_; }

  struct Level {
    nn::Conv2d conv;  // the first level's from the image (bias), the others stride 2 without bias
    std::vector<TaesdBlock> blocks;
  };
  std::vector<Level> levels;
  nn::Conv2d conv_out;  // to the latent channels, with bias

 private:
  TaesdConfig config_;
  DType dtype_;
  Device device_;
};

}  // namespace sdgen
