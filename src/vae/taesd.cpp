// TAESD's decoder and encoder (taesd.h), following diffusers' DecoderTiny and EncoderTiny layer by
// layer. The affine maps at either end ((x+1)/2 in, x·2−1 out) are a scale then a per-channel add:
// torch's x.add(1).div(2) and x.mul(2).sub(1) round once each, and so do these (the ×2 and ×½ are
// exact), so the results match bit for bit.
#include "vae/taesd.h"

#include "core/interrupt.h"
#include "sdgen/error.h"

namespace sdgen {

namespace {

// A 3x3 (or 1x1) convolution, "same" padded, without bias.
nn::Conv2d conv_no_bias(const nn::WeightLoader& w, const std::string& name, int64_t in, int64_t out, int k,
                        int stride = 1) {
  nn::Conv2d c;
  c.weight = w.load_conv(name + ".weight", out, in, k);
  c.stride = stride;
  c.padding = k / 2;
  return c;
}

// x + v in every channel: [N, C] of v, on x's device and dtype.
Tensor add_constant(const Tensor& x, float v) {
  const Tensor b = Tensor::from_floats({x.dim(0), x.dim(-1)}, std::vector<float>(x.dim(0) * x.dim(-1), v));
  return ops::add_channel(x, ops::cast(b, x.dtype()).to(x.device()));
}

}  // namespace

TaesdBlock::TaesdBlock(const nn::WeightLoader& w, const std::string& name, int64_t in, int64_t out)
    : conv0(w, name + ".conv.0", in, out, 3), conv2(w, name + ".conv.2", out, out, 3), conv4(w, name + ".conv.4", out, out, 3) {
  if (in != out) skip = conv_no_bias(w, name + ".skip", in, out, 1);
}

Tensor TaesdBlock::operator()(const Tensor& x) const {
  Tensor h = ops::relu(conv0(x));
  h = ops::relu(conv2(h));
  // The skip connection is added inside the last convolution (fused on CUDA), then the fuse ReLU.
  return ops::relu(conv4(h, skip.weight.defined() ? skip(x) : x));
}

TaesdDecoder::TaesdDecoder(const Checkpoint& ckpt, const TaesdConfig& config, DType dtype, Device device)
    : config_(config), dtype_(dtype), device_(device) {
  const TaesdConfig& c = config_;
  SDGEN_CHECK(!c.decoder_block_channels.empty() && c.decoder_block_channels.size() == c.decoder_blocks.size(),
              "TAESD config: decoder levels and block counts differ");
  const nn::WeightLoader w{ckpt, dtype, device};
  const std::string p = "taesd.decoder.layers.";
  conv_in = nn::Conv2d(w, p + "0", c.latent_channels, c.decoder_block_channels[0], 3);
  int k = 2;  // after conv_in and its ReLU
  int64_t prev = c.decoder_block_channels[0];
  for (size_t i = 0; i < c.decoder_blocks.size(); ++i) {
    const int64_t ch = c.decoder_block_channels[i];
    const bool last = i + 1 == c.decoder_blocks.size();
    Level l;
    for (int b = 0; b < c.decoder_blocks[i]; ++b, prev = ch) l.blocks.emplace_back(w, p + std::to_string(k++), prev, ch);
    if (!last) ++k;  // the Upsample
    const std::string conv = p + std::to_string(k++);
    l.conv = last ? nn::Conv2d(w, conv, ch, c.out_channels, 3) : conv_no_bias(w, conv, ch, ch, 3);
    levels.push_back(std::move(l));
  }
}

Tensor TaesdDecoder::decode(const Tensor& latents) const {
  if (latents.ndim() != 4 || latents.dim(3) != config_.latent_channels)
    throw_usage("TAESD decoder input " + shape_str(latents.shape()) + ": expected [N, h, w, " +
                std::to_string(config_.latent_channels) + "]");
  Tensor h = latents.to(device_);
  if (h.dtype() != dtype_) h = ops::cast(h, dtype_);
  if (config_.scaling_factor != 1.0f) h = ops::scale(h, 1.0f / config_.scaling_factor);
  const float m = config_.latent_clamp;
  h = ops::scale(ops::tanh(ops::scale(h, 1.0f / m)), m);
  h = ops::relu(conv_in(h));
  for (size_t i = 0; i < levels.size(); ++i) {
    throw_if_interrupted("decoding");
    for (const TaesdBlock& b : levels[i].blocks) h = b(h);
    if (i + 1 < levels.size()) h = ops::upsample_nearest2x(h);
    h = levels[i].conv(h);
  }
  return add_constant(ops::scale(h, 2.0f), -1.0f);  // [0, 1] -> [-1, 1]
}

TaesdEncoder::TaesdEncoder(const Checkpoint& ckpt, const TaesdConfig& config, DType dtype, Device device)
    : config_(config), dtype_(dtype), device_(device) {
  const TaesdConfig& c = config_;
  SDGEN_CHECK(!c.encoder_block_channels.empty() && c.encoder_block_channels.size() == c.encoder_blocks.size(),
              "TAESD config: encoder levels and block counts differ");
  if (device != Device::Meta && !ckpt.has("taesd.encoder.layers.0.weight"))
    throw_model(ckpt.name() + ": no TAESD encoder (encoder.layers.* tensors, or taesd_encoder.safetensors beside "
                "the decoder) to encode images with");
  const nn::WeightLoader w{ckpt, dtype, device};
  const std::string p = "taesd.encoder.layers.";
  int k = 0;
  int64_t prev = c.in_channels;
  for (size_t i = 0; i < c.encoder_blocks.size(); ++i) {
    const int64_t ch = c.encoder_block_channels[i];
    Level l;
    const std::string conv = p + std::to_string(k++);
    l.conv = i == 0 ? nn::Conv2d(w, conv, prev, ch, 3) : conv_no_bias(w, conv, prev, ch, 3, /*stride=*/2);
    prev = ch;
    for (int b = 0; b < c.encoder_blocks[i]; ++b) l.blocks.emplace_back(w, p + std::to_string(k++), ch, ch);
    levels.push_back(std::move(l));
  }
  conv_out = nn::Conv2d(w, p + std::to_string(k), prev, c.latent_channels, 3);
}

Tensor TaesdEncoder::encode(const Tensor& image) const {
  const int f = downscale();
  if (image.ndim() != 4 || image.dim(3) != config_.in_channels || image.dim(0) < 1 || image.dim(1) < f ||
      image.dim(2) < f || image.dim(1) % f != 0 || image.dim(2) % f != 0)
    throw_usage("TAESD encoder input " + shape_str(image.shape()) + ": expected [N, H, W, " +
                std::to_string(config_.in_channels) + "] with H and W positive multiples of " + std::to_string(f));
  Tensor h = image.to(device_);
  if (h.dtype() != dtype_) h = ops::cast(h, dtype_);
  h = add_constant(ops::scale(h, 0.5f), 0.5f);  // [-1, 1] -> [0, 1]
  for (const Level& l : levels) {
    throw_if_interrupted("encoding");
    h = l.conv(h);
    for (const TaesdBlock& b : l.blocks) h = b(h);
  }
  h = conv_out(h);
  if (h.dtype() != DType::F32) h = ops::cast(h, DType::F32);
  return device_ == Device::Meta ? h : h.to(Device::CPU);
}

}  // namespace sdgen
