// CLIPTextModel (clip.h) as transformers computes it: token + position embeddings, pre-LN encoder
// layers with causal self-attention and a quick_gelu MLP, final LayerNorm.
#include "text/clip.h"

#include <algorithm>
#include <cmath>

#include "sdgen/error.h"

namespace sdgen {

using nn::join;

ClipTextEncoder::ClipTextEncoder(const Checkpoint& ckpt, const ClipConfig& config, DType dtype,
                                 Device device, const std::string& component)
    : config_(config), dtype_(dtype), device_(device) {
  const nn::WeightLoader w{ckpt, dtype, device};
  const ClipConfig& c = config_;
  SDGEN_CHECK(c.hidden % c.heads == 0, "CLIP config: hidden not divisible by heads");
  if (c.act != "quick_gelu" && c.act != "gelu")
    throw_model("CLIP activation '" + c.act + "' is not supported (quick_gelu or gelu)");
  const std::string root = component + ".text_model";
  const int64_t d = c.hidden;
  // Prompts are encoded in chunks of 77 tokens (BOS, 75, EOS): a shorter position table cannot
  // hold one, and is refused here, at load, rather than at the first prompt. A dry pass (on the meta
  // device, pipeline/dry_run.h) runs no prompt: it counts the model as configured.
  if (c.max_positions < 77 && device != Device::Meta)
    throw_model("text encoder: its position table (" + root + ".embeddings.position_embedding.weight) has " +
                std::to_string(c.max_positions) + " rows, fewer than the 77 tokens of a prompt chunk");

  embeddings.token_embedding =
      w.load(root + ".embeddings.token_embedding.weight", {c.vocab_size, d});
  embeddings.position_embedding =
      w.load(root + ".embeddings.position_embedding.weight", {c.max_positions, d});
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = root + ".encoder.layers." + std::to_string(i);
    layers.push_back(EncoderLayer{
        nn::LayerNorm(w, p + ".layer_norm1", d, c.eps),
        SelfAttention{nn::Linear(w, p + ".self_attn.q_proj", d, d, true),
                      nn::Linear(w, p + ".self_attn.k_proj", d, d, true),
                      nn::Linear(w, p + ".self_attn.v_proj", d, d, true),
                      nn::Linear(w, p + ".self_attn.out_proj", d, d, true)},
        nn::LayerNorm(w, p + ".layer_norm2", d, c.eps),
        Mlp{nn::Linear(w, p + ".mlp.fc1", d, c.intermediate, true),
            nn::Linear(w, p + ".mlp.fc2", c.intermediate, d, true)}});
  }
  final_layer_norm = nn::LayerNorm(w, root + ".final_layer_norm", d, c.eps);
  if (c.projection_dim > 0) text_projection = nn::Linear(w, component + ".text_projection", d, c.projection_dim, false);
}

int ClipTextEncoder::append_token_rows(const Tensor& rows) {
  const int64_t d = config_.hidden;
  if (rows.shape().size() != 2 || rows.dim(1) != d)
    throw_model("text encoder: new token rows of shape " + shape_str(rows.shape()) + ", expected [k, " +
                std::to_string(d) + "]");
  const int first = token_count();
  std::vector<float> table = embeddings.token_embedding.to(Device::CPU).to_floats();
  const std::vector<float> add = rows.to_floats();
  table.insert(table.end(), add.begin(), add.end());
  Tensor t = Tensor::from_floats({first + rows.dim(0), d}, table);
  if (dtype_ != DType::F32) t = ops::cast(t, dtype_);
  embeddings.token_embedding = t.to(device_);
  return first;
}

Tensor ClipTextEncoder::forward(const std::vector<int>& ids, int n, int clip_skip, Tensor* pooled) const {
  const ClipConfig& c = config_;
  const int n_layers = (int)layers.size();
  if (clip_skip < 1 || clip_skip > n_layers)
    throw_usage("--clip-skip " + std::to_string(clip_skip) + ": this model's text encoder has " +
                std::to_string(n_layers) + " layers, so clip skip is between 1 and " + std::to_string(n_layers));
  SDGEN_CHECK(n > 0 && ids.size() % n == 0, "CLIP: ids are not n whole sequences");
  const int len = (int)(ids.size() / n);
  SDGEN_CHECK(len >= 1 && len <= c.max_positions,
              "CLIP: sequence of " + std::to_string(len) + " tokens");
  for (int id : ids)
    if (id < 0 || id >= token_count())
      throw_model("CLIP: token id " + std::to_string(id) + " outside the vocabulary of " +
                  std::to_string(token_count()));

  std::vector<int> positions(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) positions[i] = (int)(i % len);
  Tensor h = ops::add(ops::embedding(ids, n, embeddings.token_embedding, device_),
                      ops::embedding(positions, n, embeddings.position_embedding, device_));

  const float scale = 1.0f / std::sqrt((float)(c.hidden / c.heads));
  const bool quick = c.act == "quick_gelu";
  auto layer = [&](const EncoderLayer& l, const Tensor& in) {
    Tensor x = l.layer_norm1(in);
    const SelfAttention& a = l.self_attn;
    x = ops::attention(a.q_proj(x), a.k_proj(x), a.v_proj(x), c.heads, scale, /*causal=*/true);
    Tensor h1 = a.out_proj(x, /*residual=*/in);
    x = l.mlp.fc1(l.layer_norm2(h1));
    x = quick ? ops::quick_gelu(x) : ops::gelu(x);
    return l.mlp.fc2(x, /*residual=*/h1);
  };
  // Clip skip N stops N - 1 layers before the last (before the penultimate with ClipConfig::penultimate).
  const int stop = n_layers - (clip_skip - 1) - (c.penultimate ? 1 : 0);
  if (stop < 1)
    throw_usage("--clip-skip " + std::to_string(clip_skip) + ": this model's text encoder has " +
                std::to_string(n_layers) + " layers and its context is the penultimate's, so clip skip is between 1 and " +
                std::to_string(n_layers - 1));
  int i = 0;
  for (; i < stop; ++i) h = layer(layers[(size_t)i], h);
  Tensor context = c.penultimate ? h : final_layer_norm(h);
  if (!pooled) return context;
  SDGEN_CHECK(c.projection_dim > 0, "CLIP: a pooled output needs a text projection");
  for (; i < n_layers; ++i) h = layer(layers[(size_t)i], h);
  // transformers' pooled output: the final LayerNorm's row at each sequence's end token, found by
  // ClipConfig::eos_token_id's rule (the first largest id, or the first end token).
  const Tensor normed = final_layer_norm(h);
  if (device_ == Device::Meta) {  // a dry pass (pipeline/dry_run.h): the projection's cost, no values
    *pooled = text_projection(Tensor::empty({n, (int64_t)c.hidden}, dtype_, Device::Meta));
    return context;
  }
  const std::vector<float> all = normed.to(Device::CPU).to_floats();
  std::vector<float> rows((size_t)n * c.hidden);
  for (int s = 0; s < n; ++s) {
    const int* seq = ids.data() + (size_t)s * len;
    int at = 0;
    if (c.eos_token_id == 2) {
      for (int t = 1; t < len; ++t)
        if (seq[t] > seq[at]) at = t;
    } else {
      at = len - 1;
      for (int t = 0; t < len; ++t)
        if (seq[t] == c.eos_token_id) {
          at = t;
          break;
        }
    }
    std::copy_n(all.begin() + ((int64_t)s * len + at) * c.hidden, c.hidden, rows.begin() + (int64_t)s * c.hidden);
  }
  Tensor picked = Tensor::from_floats({n, (int64_t)c.hidden}, rows);
  if (dtype_ != DType::F32) picked = ops::cast(picked, dtype_);
  *pooled = text_projection(picked.to(device_));
  return context;
}

}  // namespace sdgen
