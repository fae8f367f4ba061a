// The CLIP text towers (transformers' CLIPTextModel, CLIPTextModelWithProjection) that turn token ids
// into the UNet's cross-attention context: the last hidden state after the final LayerNorm (SD v1,
// 2.x), or the penultimate layer's hidden state (SDXL's two encoders), and for SDXL's second encoder
// the pooled, projected embedding of the end token.
#pragma once
#include <string>
#include <vector>

#include "nn/nn.h"
#include "io/checkpoint.h"
#include "sdgen/config.h"

namespace sdgen {

class ClipTextEncoder {
 public:
  // Loads "<root>.text_model.*" (and "<root>.text_projection.weight" with a projection), converted
  // to dtype, onto device. root: "text_encoder", or SDXL's "text_encoder_2".
  ClipTextEncoder(const Checkpoint& ckpt, const ClipConfig& config, DType dtype, Device device,
                  const std::string& root = "text_encoder");

  // ids: n sequences of L = ids.size()/n tokens each (L <= max_positions; 77 from the tokenizer).
  // Returns [n, L, hidden] in the model's dtype on its device.
  // clip_skip (A1111's "Clip skip"): the hidden state clip_skip - 1 layers before the last, then
  // the final LayerNorm, as diffusers' clip_skip = clip_skip - 1 (hidden_states[-clip_skip]);
  // 1 is the last layer. Between 1 and the layer count, else Error(kUsage).
  // With ClipConfig::penultimate (SDXL), clip skip 1 is the penultimate layer's hidden state without
  // the final LayerNorm (diffusers' hidden_states[-2]), N the one N - 1 layers before it.
  // pooled (with a projection; optional): text_projection(final_layer_norm(last layer)) at each
  // sequence's first end token, [n, projection_dim], from the full depth whatever the clip skip.
  Tensor forward(const std::vector<int>& ids, int n, int clip_skip = 1, Tensor* pooled = nullptr) const;

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
  nn::Linear text_projection;  // CLIPTextModelWithProjection (ClipConfig::projection_dim), no bias
};

}  // namespace sdgen
