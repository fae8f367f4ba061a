// The blocks shared by the UNet and the VAE decoder, as diffusers names them: ResnetBlock2D,
// Downsample2D, Upsample2D, and the UNet's Transformer2DModel with its BasicTransformerBlock,
// Attention and GEGLU FeedForward. Members carry the checkpoint's names (to_out.0 -> to_out_0).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/nn.h"

namespace sdgen {

// GN -> SiLU -> conv3x3 [-> + time_emb_proj(SiLU(temb))] -> GN -> SiLU -> conv3x3, + shortcut.
struct ResnetBlock2D {
  nn::GroupNorm norm1;
  nn::Conv2d conv1;
  nn::Linear time_emb_proj;  // undefined in the VAE (no time embedding)
  nn::GroupNorm norm2;
  nn::Conv2d conv2;
  nn::Conv2d conv_shortcut;  // 1x1, only when in != out
  bool has_shortcut = false;

  // temb_channels 0: no time embedding.
  ResnetBlock2D(const nn::WeightLoader& w, const std::string& name, int64_t in, int64_t out,
                int64_t temb_channels, int groups, float eps);
  // x [N,H,W,in]; silu_temb [N,temb] = SiLU(temb), computed once per UNet call by the caller.
  Tensor operator()(const Tensor& x, const Tensor& silu_temb = Tensor()) const;
};

// conv3x3, stride 2, padding 1.
struct Downsample2D {
  nn::Conv2d conv;
  Downsample2D(const nn::WeightLoader& w, const std::string& name, int64_t channels);
  Tensor operator()(const Tensor& x) const { return conv(x); }
};

// Nearest x2, then conv3x3.
struct Upsample2D {
  nn::Conv2d conv;
  Upsample2D(const nn::WeightLoader& w, const std::string& name, int64_t channels);
  Tensor operator()(const Tensor& x) const { return conv(ops::upsample_nearest2x(x)); }
};

struct Attention;

// The text context as the cross-attentions read it: the hidden states and, where prepared
// (UNet::prepare_context), each cross-attention's keys and values, so that they are computed once
// per generation instead of once per denoising step (the context does not change between steps).
struct CrossContext {
  Tensor hidden;  // [N, L, cross_dim]
  // SDXL: UNet::prepare_added's embedding of the pooled text and size ids, [N, time_embed_dim],
  // added to the time embedding; undefined for SD v1/2.
  Tensor added;
  std::map<const Attention*, std::pair<Tensor, Tensor>> kv;  // to_k(hidden), to_v(hidden)
};

// Multi-head attention: q from x, k and v from context (or x itself). Head dim = inner / heads,
// scores scaled by head_dim^-0.5. q/k/v biases only where the checkpoint has them.
struct Attention {
  nn::Linear to_q, to_k, to_v, to_out_0;
  int heads = 1;
  float scale = 1.0f;
  Attention(const nn::WeightLoader& w, const std::string& name, int64_t query_dim,
            int64_t context_dim, int heads, bool qkv_bias);
  // x [N, L, query_dim]; context [N, Lk, context_dim] or undefined for self-attention.
  // residual (optional, x's shape) is added to the output projection: the caller's skip connection.
  Tensor operator()(const Tensor& x, const Tensor& context = Tensor(), const Tensor& residual = Tensor()) const;
  // Cross-attention to a context: its prepared keys and values for this attention when it has
  // them, else to_k / to_v of its hidden states.
  Tensor operator()(const Tensor& x, const CrossContext& context, const Tensor& residual) const;
};

// GEGLU (dim -> 2*4dim, value * gelu(gate)) -> linear 4dim -> dim.
struct FeedForward {
  nn::Linear net_0_proj;  // ff.net.0.proj
  nn::Linear net_2;       // ff.net.2
  FeedForward(const nn::WeightLoader& w, const std::string& name, int64_t dim);
  Tensor operator()(const Tensor& x, const Tensor& residual = Tensor()) const {
    return net_2(ops::geglu(net_0_proj(x)), residual);
  }
};

struct BasicTransformerBlock {
  nn::LayerNorm norm1;
  Attention attn1;  // self
  nn::LayerNorm norm2;
  Attention attn2;  // cross: k, v from the text context
  nn::LayerNorm norm3;
  FeedForward ff;
  BasicTransformerBlock(const nn::WeightLoader& w, const std::string& name, int64_t dim,
                        int64_t cross_dim, int heads);
  Tensor operator()(const Tensor& x, const CrossContext& context) const;
};

// GroupNorm -> proj_in -> transformer blocks over the H*W tokens -> proj_out, + residual.
// proj_in/proj_out are 1x1 convs in SD v1 and linears in SD v2; over NHWC both are a linear over
// channels, and the checkpoint accepts either stored shape ([C,C,1,1] or [C,C]) for [C,C].
struct Transformer2DModel {
  nn::GroupNorm norm;
  nn::Linear proj_in;
  std::vector<BasicTransformerBlock> transformer_blocks;
  nn::Linear proj_out;
  // depth: transformer blocks (transformer_layers_per_block).
  Transformer2DModel(const nn::WeightLoader& w, const std::string& name, int64_t channels,
                     int64_t cross_dim, int heads, int groups, float norm_eps, int depth = 1);
  // x [N,H,W,C], context [N,L,cross_dim]
  Tensor operator()(const Tensor& x, const Tensor& context) const { return (*this)(x, CrossContext{context, {}, {}}); }
  Tensor operator()(const Tensor& x, const CrossContext& context) const;
};

// The text context on `device` in `dtype`, with the keys and values of every cross-attention of
// the transformers in `groups` made from it once (the UNet's and a ControlNet's prepare_context).
CrossContext make_cross_context(const Tensor& context, Device device, DType dtype,
                                const std::vector<const std::vector<Transformer2DModel>*>& groups);

}  // namespace sdgen
