// The CLIP ViT-L/14 text tower (transformers' CLIPTextModel) that turns token ids into the UNet's
// cross-attention context: the last hidden state after the final LayerNorm.
#pragma once
#include <vector>

#include "nn/nn.h"
#include "io/checkpoint.h"
#include "sdgen/config.h"

namespace sdgen {

class ClipTextEncoder {
 public:
  // Loads "text_encoder.text_model.*", converted to dtype, onto device.
  ClipTextEncoder(const Checkpoint& ckpt, const ClipConfig& config, DType dtype, Device device);

  // ids: n sequences of L = ids.size()/n tokens each (L <= max_positions; 77 from the tokenizer).
  // Returns [n, L, hidden] in the model's dtype on its device.
  // clip_skip (A1111's "Clip skip"): the hidden state clip_skip - 1 layers before the last, then
  // the final LayerNorm, as diffusers' clip_skip = clip_skip - 1 (hidden_states[-clip_skip]);
  // 1 is the last layer. Between 1 and the layer count, else Error(kUsage).
  Tensor forward(const std::vector<int>& ids, int n, int clip_skip = 1) const;

  // Textual inversion: appends rows ([k, hidden] host fp32) to the token table, as new token ids
  // after the last one (diffusers' resize_token_embeddings + add_tokens). Returns the first new id.
  int append_token_rows(const Tensor& rows);
  int token_count() const { return (int)embeddings.token_embedding.dim(0); }

  const ClipConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

 private:
  struct Embeddings {
    Tensor token_embedding;     // [vocab, hidden]
    Tensor position_embedding;  // [max_positions, hidden]
  };
  struct SelfAttention {
    nn::Linear q_proj, k_proj, v_proj, out_proj;
  };
  struct Mlp {
    nn::Linear fc1, fc2;
  };
  struct EncoderLayer {
    nn::LayerNorm layer_norm1;
    SelfAttention self_attn;
    nn::LayerNorm layer_norm2;
    Mlp mlp;
  };

  ClipConfig config_;
  DType dtype_;
  Device device_;

  Embeddings embeddings;
  std::vector<EncoderLayer> layers;  // text_model.encoder.layers
  nn::LayerNorm final_layer_norm;
};

}  // namespace sdgen
