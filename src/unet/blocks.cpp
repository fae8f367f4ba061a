// The shared UNet/VAE blocks (blocks.h), following diffusers' resnet.py, attention.py and
// transformer_2d.py for SD v1 (no dropout at inference, output_scale_factor 1).
#include "unet/blocks.h"

#include <cmath>

#include "sdgen/error.h"

namespace sdgen {

using nn::join;

ResnetBlock2D::ResnetBlock2D(const nn::WeightLoader& w, const std::string& name, int64_t in,
                             int64_t out, int64_t temb_channels, int groups, float eps)
    : norm1(w, join(name, "norm1"), in, groups, eps),
      conv1(w, join(name, "conv1"), in, out, 3),
      norm2(w, join(name, "norm2"), out, groups, eps),
      conv2(w, join(name, "conv2"), out, out, 3),
      has_shortcut(in != out) {
  if (temb_channels > 0) time_emb_proj = nn::Linear(w, join(name, "time_emb_proj"), temb_channels, out, true);
  if (has_shortcut) conv_shortcut = nn::Conv2d(w, join(name, "conv_shortcut"), in, out, 1);
}

Tensor ResnetBlock2D::operator()(const Tensor& x, const Tensor& silu_temb) const {
  // The time embedding and the shortcut are added by the convolutions themselves (ops::conv2d).
  const Tensor temb = time_emb_proj.weight.defined() ? time_emb_proj(silu_temb) : Tensor();
  Tensor h = conv1(norm1(x, /*silu=*/true), /*add=*/temb);
  return conv2(norm2(h, /*silu=*/true), /*add=*/has_shortcut ? conv_shortcut(x) : x);
}

Downsample2D::Downsample2D(const nn::WeightLoader& w, const std::string& name, int64_t channels)
    : conv(w, join(name, "conv"), channels, channels, 3, /*stride=*/2) {}

Upsample2D::Upsample2D(const nn::WeightLoader& w, const std::string& name, int64_t channels)
    : conv(w, join(name, "conv"), channels, channels, 3) {}

Attention::Attention(const nn::WeightLoader& w, const std::string& name, int64_t query_dim,
                     int64_t context_dim, int heads_, bool qkv_bias)
    : to_q(w, join(name, "to_q"), query_dim, query_dim, qkv_bias),
      to_k(w, join(name, "to_k"), context_dim, query_dim, qkv_bias),
      to_v(w, join(name, "to_v"), context_dim, query_dim, qkv_bias),
      to_out_0(w, join(name, "to_out.0"), query_dim, query_dim, true),
      heads(heads_),
      scale(1.0f / std::sqrt((float)(query_dim / heads_))) {}

Tensor Attention::operator()(const Tensor& x, const Tensor& context, const Tensor& residual) const {
  const Tensor& kv = context.defined() ? context : x;
  Tensor o = ops::attention(to_q(x), to_k(kv), to_v(kv), heads, scale, /*causal=*/false);
  return to_out_0(o, residual);
}

Tensor Attention::operator()(const Tensor& x, const CrossContext& context, const Tensor& residual) const {
  const auto it = context.kv.find(this);
  if (it == context.kv.end()) return (*this)(x, context.hidden, residual);
  Tensor o = ops::attention(to_q(x), it->second.first, it->second.second, heads, scale, /*causal=*/false);
  return to_out_0(o, residual);
}

FeedForward::FeedForward(const nn::WeightLoader& w, const std::string& name, int64_t dim)
    : net_0_proj(w, join(name, "net.0.proj"), dim, dim * 8, true),
      net_2(w, join(name, "net.2"), dim * 4, dim, true) {}

BasicTransformerBlock::BasicTransformerBlock(const nn::WeightLoader& w, const std::string& name,
                                             int64_t dim, int64_t cross_dim, int heads)
    : norm1(w, join(name, "norm1"), dim, 1e-5f),
      attn1(w, join(name, "attn1"), dim, dim, heads, false),
      norm2(w, join(name, "norm2"), dim, 1e-5f),
      attn2(w, join(name, "attn2"), dim, cross_dim, heads, false),
      norm3(w, join(name, "norm3"), dim, 1e-5f),
      ff(w, join(name, "ff"), dim) {}

Tensor BasicTransformerBlock::operator()(const Tensor& x, const CrossContext& context) const {
  Tensor h = attn1(norm1(x), Tensor(), /*residual=*/x);
  h = attn2(norm2(h), context, /*residual=*/h);
  return ff(norm3(h), /*residual=*/h);
}

Transformer2DModel::Transformer2DModel(const nn::WeightLoader& w, const std::string& name,
                                       int64_t channels, int64_t cross_dim, int heads, int groups,
                                       float norm_eps, int depth)
    : norm(w, join(name, "norm"), channels, groups, norm_eps),
      proj_in(w, join(name, "proj_in"), channels, channels, true),
      proj_out(w, join(name, "proj_out"), channels, channels, true) {
  // The depth comes from the config (SD v1/2: 1; SDXL: 1, 2 or 10), so a missing block is named.
  SDGEN_CHECK(depth >= 1, "Transformer2DModel: depth < 1");
  for (int i = 0; i < depth; ++i)
    transformer_blocks.emplace_back(w, join(name, "transformer_blocks." + std::to_string(i)), channels, cross_dim, heads);
}

Tensor Transformer2DModel::operator()(const Tensor& x, const CrossContext& context) const {
  // NHWC: the image is already the [N, H*W, C] token sequence; only the shape changes.
  const Shape image = x.shape();
  Tensor h = proj_in(norm(x).reshape({image[0], image[1] * image[2], image[3]}));
  for (const auto& block : transformer_blocks) h = block(h, context);
  return proj_out(h, /*residual=*/x.reshape(h.shape())).reshape(image);
}

CrossContext make_cross_context(const Tensor& context, Device device, DType dtype,
                                const std::vector<const std::vector<Transformer2DModel>*>& groups) {
  CrossContext c{context.to(device), {}, {}};
  if (c.hidden.dtype() != dtype) c.hidden = ops::cast(c.hidden, dtype);
  for (const std::vector<Transformer2DModel>* ts : groups)
    for (const Transformer2DModel& t : *ts)
      for (const BasicTransformerBlock& b : t.transformer_blocks)
        c.kv[&b.attn2] = {b.attn2.to_k(c.hidden), b.attn2.to_v(c.hidden)};
  return c;
}

}  // namespace sdgen
