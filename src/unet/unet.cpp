// UNet2DConditionModel (unet.h), structured as diffusers builds it for SD v1: time embedding,
// conv_in, down blocks collecting skips, mid block, up blocks consuming them, output head.
#include "unet/unet.h"

#include <algorithm>

#include "sdgen/error.h"

namespace sdgen {

using nn::join;

namespace {
std::string idx(const std::string& prefix, size_t i) { return prefix + "." + std::to_string(i); }
}  // namespace

UNet::UNet(const Checkpoint& ckpt, const UNetConfig& config, DType dtype, Device device)
    : config_(config), dtype_(dtype), device_(device) {
  const nn::WeightLoader w{ckpt, dtype, device};
  const UNetConfig& c = config_;
  const std::vector<int>& ch = c.block_channels;
  const size_t levels = ch.size();
  SDGEN_CHECK(levels >= 1 && c.down_attention.size() == levels, "UNet config: levels");
  const int64_t temb = c.time_embed_dim();
  const int64_t cross = c.cross_attention_dim;
  auto resnet = [&](const std::string& name, int64_t in, int64_t out) {
    return ResnetBlock2D(w, name, in, out, temb, c.norm_groups, c.norm_eps);
  };
  auto transformer = [&](const std::string& name, size_t level) {
    return Transformer2DModel(w, name, c.block_channels[level], cross, c.heads_at(level), c.norm_groups,
                              c.transformer_norm_eps, c.depth_at(level));
  };

  time_embedding = TimestepEmbedding::load(w, "unet.time_embedding", c);
  add_embedding = TimestepEmbedding::load_added(w, "unet.add_embedding", c);
  conv_in = nn::Conv2d(w, "unet.conv_in", c.in_channels, ch[0], 3);
  int64_t out = ch[0];
  for (size_t i = 0; i < levels; ++i) {
    down_blocks.push_back(DownBlock::load(w, idx("unet.down_blocks", i), c, i, out));
    out = ch[i];
  }
  const int64_t mid = ch.back();
  mid_block = MidBlock::load(w, "unet.mid_block", c);

  // Up level i mirrors down level L-1-i. Its resnet j takes the running path plus one skip: the
  // skips of one down level are its resnets' outputs (channels ch[L-1-i]) and, last popped, the
  // output of the level below it (its downsampler, or conv_in for level 0).
  int64_t prev = mid;
  for (size_t i = 0; i < levels; ++i) {
    const std::string name = idx("unet.up_blocks", i);
    const size_t level = levels - 1 - i;
    const int64_t out_ch = ch[level];
    const int64_t below = ch[level == 0 ? 0 : level - 1];
    UpBlock b;
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const int64_t skip = j == c.layers_per_block ? below : out_ch;
      const int64_t in = (j == 0 ? prev : out_ch) + skip;
      b.resnets.push_back(resnet(idx(name + ".resnets", j), in, out_ch));
      if (c.down_attention[level]) b.attentions.push_back(transformer(idx(name + ".attentions", j), level));
    }
    if (i + 1 < levels) b.upsamplers.emplace_back(w, name + ".upsamplers.0", out_ch);
    up_blocks.push_back(std::move(b));
    prev = out_ch;
  }

  conv_norm_out = nn::GroupNorm(w, "unet.conv_norm_out", ch[0], c.norm_groups, c.norm_eps);
  conv_out = nn::Conv2d(w, "unet.conv_out", ch[0], c.out_channels, 3);
}

UNet::TimestepEmbedding UNet::TimestepEmbedding::load(const nn::WeightLoader& w, const std::string& name,
                                                     const UNetConfig& c) {
  const int64_t temb = c.time_embed_dim();
  return {nn::Linear(w, name + ".linear_1", c.block_channels[0], temb, true),
          nn::Linear(w, name + ".linear_2", temb, temb, true)};
}

UNet::TimestepEmbedding UNet::TimestepEmbedding::load_added(const nn::WeightLoader& w, const std::string& name,
                                                           const UNetConfig& c) {
  if (!c.text_time()) return {};
  const int64_t temb = c.time_embed_dim();
  return {nn::Linear(w, name + ".linear_1", c.addition_embed_input_dim, temb, true),
          nn::Linear(w, name + ".linear_2", temb, temb, true)};
}

UNet::DownBlock UNet::DownBlock::load(const nn::WeightLoader& w, const std::string& name, const UNetConfig& c,
                                      size_t level, int64_t in) {
  const int64_t out = c.block_channels[level];
  DownBlock b;
  for (int j = 0; j < c.layers_per_block; ++j) {
    b.resnets.emplace_back(w, idx(name + ".resnets", j), j == 0 ? in : out, out, c.time_embed_dim(), c.norm_groups,
                           c.norm_eps);
    if (c.down_attention[level])
      b.attentions.emplace_back(w, idx(name + ".attentions", j), out, c.cross_attention_dim, c.heads_at(level), c.norm_groups,
                                c.transformer_norm_eps, c.depth_at(level));
  }
  if (level + 1 < c.block_channels.size()) b.downsamplers.emplace_back(w, name + ".downsamplers.0", out);
  return b;
}

Tensor UNet::DownBlock::operator()(Tensor h, const Tensor& silu_temb, const CrossContext& context,
                                   std::vector<Tensor>& skips) const {
  for (size_t j = 0; j < resnets.size(); ++j) {
    h = resnets[j](h, silu_temb);
    if (!attentions.empty()) h = attentions[j](h, context);
    skips.push_back(h);
  }
  for (const Downsample2D& d : downsamplers) {
    h = d(h);
    skips.push_back(h);
  }
  return h;
}

UNet::MidBlock UNet::MidBlock::load(const nn::WeightLoader& w, const std::string& name, const UNetConfig& c) {
  const int64_t mid = c.block_channels.back();
  MidBlock m;
  m.resnets.emplace_back(w, name + ".resnets.0", mid, mid, c.time_embed_dim(), c.norm_groups, c.norm_eps);
  const size_t last = c.block_channels.size() - 1;
  m.attentions.emplace_back(w, name + ".attentions.0", mid, c.cross_attention_dim, c.heads_at(last), c.norm_groups,
                            c.transformer_norm_eps, c.depth_at(last));
  m.resnets.emplace_back(w, name + ".resnets.1", mid, mid, c.time_embed_dim(), c.norm_groups, c.norm_eps);
  return m;
}

Tensor UNet::forward(const Tensor& x_in, const std::vector<float>& timesteps,
                     const Tensor& context_in, const Probe& probe) const {
  SDGEN_CHECK((int64_t)timesteps.size() == x_in.dim(0), "UNet: one timestep per sample");
  return forward(x_in, ops::timestep_embedding(timesteps, config_.block_channels[0], dtype_, device_),
                 context_in, probe);
}

Tensor UNet::forward(const Tensor& x_in, const Tensor& time_proj, const Tensor& context_in,
                     const Probe& probe) const {
  return forward(x_in, time_proj, CrossContext{context_in, {}, {}}, probe);
}

Tensor UNet::prepare_added(const Tensor& pooled, const std::vector<float>& time_ids) const {
  SDGEN_CHECK(config_.text_time(), "UNet: this model takes no added conditioning");
  return add_embedding.added(config_, dtype_, device_, pooled, time_ids);
}

Tensor UNet::TimestepEmbedding::added(const UNetConfig& c, DType dtype, Device device, const Tensor& pooled,
                                      const std::vector<float>& time_ids) const {
  const int64_t n = pooled.dim(0), ids = (int64_t)time_ids.size() / std::max<int64_t>(n, 1);
  const int64_t want = c.addition_embed_input_dim - ids * c.addition_time_embed_dim;
  if (pooled.ndim() != 2 || ids * n != (int64_t)time_ids.size() || pooled.dim(1) != want)
    throw_model("UNet add_embedding takes " + std::to_string(c.addition_embed_input_dim) + " values per row: " +
                "a pooled text embedding of " + std::to_string(want) + " and " + std::to_string(ids) + " size ids × " +
                std::to_string(c.addition_time_embed_dim) + "; the text encoder gives " + shape_str(pooled.shape()));
  // diffusers' add_time_proj (Timesteps, flip_sin_to_cos, shift 0) over the flattened ids, [n·ids, D]
  // -> [n, ids·D], after the pooled embedding.
  const Tensor t = ops::timestep_embedding(time_ids, c.addition_time_embed_dim, DType::F32, Device::CPU);
  const std::vector<float> tv = t.to_floats(), pv = pooled.to(Device::CPU).to_floats();
  const int64_t row = c.addition_embed_input_dim, tw = ids * c.addition_time_embed_dim;
  std::vector<float> all((size_t)(n * row));
  for (int64_t r = 0; r < n; ++r) {
    std::copy_n(pv.begin() + r * want, want, all.begin() + r * row);
    std::copy_n(tv.begin() + r * tw, tw, all.begin() + r * row + want);
  }
  Tensor in = Tensor::from_floats({n, row}, all);
  if (dtype != DType::F32) in = ops::cast(in, dtype);
  return (*this)(in.to(device));
}

CrossContext UNet::prepare_context(const Tensor& context_in) const {
  std::vector<const std::vector<Transformer2DModel>*> groups;
  for (const DownBlock& b : down_blocks) groups.push_back(&b.attentions);
  groups.push_back(&mid_block.attentions);
  for (const UpBlock& b : up_blocks) groups.push_back(&b.attentions);
  return make_cross_context(context_in, device_, dtype_, groups);
}

Tensor UNet::forward(const Tensor& x_in, const Tensor& time_proj, const CrossContext& cross_in,
                     const Probe& probe, const UNetControl* control) const {
  const Tensor& context_in = cross_in.hidden;
  auto show = [&](const std::string& name, const Tensor& t) {
    if (probe) probe(name, t);
  };
  const int64_t n = x_in.dim(0);
  const int64_t down_factor = int64_t(1) << (config_.block_channels.size() - 1);
  if (x_in.ndim() != 4 || x_in.dim(3) != config_.in_channels || x_in.dim(1) % down_factor ||
      x_in.dim(2) % down_factor)
    throw_usage("UNet input " + shape_str(x_in.shape()) + ": expected [N, h, w, " +
                std::to_string(config_.in_channels) + "] with h, w multiples of " +
                std::to_string(down_factor));
  SDGEN_CHECK(time_proj.ndim() == 2 && time_proj.dim(0) == n && time_proj.dim(1) == config_.block_channels[0],
              "UNet time_proj " + shape_str(time_proj.shape()) + ": expected [N, block_channels[0]]");
  SDGEN_CHECK(context_in.ndim() == 3 && context_in.dim(0) == n &&
                  context_in.dim(2) == config_.cross_attention_dim,
              "UNet context " + shape_str(context_in.shape()));
  auto prepare = [&](const Tensor& t) {
    Tensor d = t.to(device_);
    return d.dtype() == dtype_ ? d : ops::cast(d, dtype_);
  };
  const Tensor x = prepare(x_in);
  CrossContext prepared;
  if (context_in.device() != device_ || context_in.dtype() != dtype_) prepared = CrossContext{prepare(context_in), {}, {}};
  const CrossContext& context = prepared.hidden.defined() ? prepared : cross_in;

  // Every resnet adds time_emb_proj(SiLU(temb)); the SiLU is shared, so it is done once here.
  Tensor temb = prepare(time_proj);
  show("time_proj", temb);
  temb = time_embedding(temb);
  show("time_embedding", temb);
  // SDXL: + add_embedding(pooled text, size ids), prepared once per generation (prepare_added).
  if (config_.text_time()) {
    SDGEN_CHECK(cross_in.added.defined() && cross_in.added.dim(0) == n,
                "UNet: this model takes added conditioning (pooled text and size ids) for every row");
    temb = ops::add(temb, prepare(cross_in.added));
    show("add_embedding", cross_in.added);
  }
  const Tensor silu_temb = ops::silu(temb);

  Tensor h = conv_in(x);
  show("conv_in", h);
  std::vector<Tensor> skips{h};
  for (size_t i = 0; i < down_blocks.size(); ++i) {
    h = down_blocks[i](h, silu_temb, context, skips);
    show("down_blocks." + std::to_string(i), h);
  }
  h = mid_block(h, silu_temb, context);
  show("mid_block", h);
  if (control) {
    // diffusers adds the residuals after the down path and the mid block have run (the path itself
    // goes on from the plain values).
    for (const ControlResiduals& r : control->nets) {
      SDGEN_CHECK(r.down.size() == skips.size(), "UNet: a ControlNet gives " + std::to_string(r.down.size()) +
                                                     " residuals for " + std::to_string(skips.size()) + " skips");
      for (size_t i = 0; i < skips.size(); ++i)
        skips[i] = ops::add_scaled_at(skips[i], r.down[i], control->scales, control->step,
                                      r.first_column + (int64_t)i, r.row_offset);
      h = ops::add_scaled_at(h, r.mid, control->scales, control->step, r.first_column + (int64_t)skips.size(),
                             r.row_offset);
    }
  }

  for (size_t i = 0; i < up_blocks.size(); ++i) {
    const UpBlock& b = up_blocks[i];
    for (size_t j = 0; j < b.resnets.size(); ++j) {
      h = ops::concat_channels(h, skips.back());
      skips.pop_back();
      h = b.resnets[j](h, silu_temb);
      if (!b.attentions.empty()) h = b.attentions[j](h, context);
    }
    for (const Upsample2D& u : b.upsamplers) h = u(h);
    show("up_blocks." + std::to_string(i), h);
  }
  SDGEN_CHECK(skips.empty(), "UNet: unconsumed skip connections");

  if (probe) probe("conv_norm_out", conv_norm_out(h, /*silu=*/false));
  return conv_out(conv_norm_out(h, /*silu=*/true));
}

}  // namespace sdgen
