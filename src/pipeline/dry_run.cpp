// Dry passes of the models on the meta device (dry_run.h).
#include "pipeline/dry_run.h"

#include <vector>

#include "core/device_memory.h"
#include "io/checkpoint.h"
#include "pipeline/flops.h"
#include "pipeline/memory_estimate.h"
#include "text/clip.h"
#include "unet/controlnet.h"
#include "unet/unet.h"
#include "vae/taesd.h"
#include "vae/vae.h"
#include "vae/vae_encoder.h"

namespace sdgen {

namespace {

// Hands every module the tensor it asks for, of the shape it asks for, holding no bytes: what the
// model then holds is its parameter count. has() is false for every name, so a module that looks
// for optional tensors builds its default form (one transformer block per Transformer2DModel, as
// SD v1 has).
class ShapeOnlyCheckpoint final : public Checkpoint {
 public:
  const ModelConfig& config() const override { return config_; }
  std::string name() const override { return "meta"; }
  bool has(const std::string&) const override { return false; }
  Tensor get(const std::string&, const Shape& expected) const override {
    return Tensor::empty(expected, DType::F32, Device::Meta);
  }
  std::vector<std::string> names() const override { return {}; }

 private:
  ModelConfig config_;
};

// Tallies one pass: the weights the model's construction leaves held, then the FLOPs and the peak
// of the forward pass above what was held when it started (weights and inputs).
class Pass {
 public:
  explicit Pass(DType dtype) : dtype_(dtype) {}
  template <class Model, class Config>
  Model build(const Config& c) {
    const uint64_t before = meta_tally().live;
    Model model(ShapeOnlyCheckpoint(), c, dtype_, Device::Meta);
    cost_.parameters = (int64_t)((meta_tally().live - before) / dtype_size(dtype_));
    return model;
  }
  // One more model held through the pass (a ControlNet beside the UNet): its parameters add up.
  template <class Model, class Config>
  Model build_more(const Config& c) {
    const int64_t before = cost_.parameters;
    Model model = build<Model>(c);
    cost_.parameters += before;
    return model;
  }
  template <class Model, class Config>
  int64_t parameters(const Config& c) {
    build<Model>(c);
    return cost_.parameters;
  }
  Tensor input(const Shape& shape) const { return Tensor::empty(shape, dtype_, Device::Meta); }
  // Call with the model and the inputs made: the forward pass's work is counted from here.
  void begin() {
    MetaTally& t = meta_tally();
    held_ = t.live;
    t.peak = t.live;
    flops_ = t.flops;
  }
  PassCost end() {
    MetaTally& t = meta_tally();
    cost_.flops = t.flops - flops_;
    cost_.live_bytes = t.peak - held_;
    return cost_;
  }

 private:
  DType dtype_;
  PassCost cost_;
  uint64_t held_ = 0;
  double flops_ = 0;
};

}  // namespace

PassCost clip_pass(const ClipConfig& c, int sequences, DType dtype) {
  Pass p(dtype);
  const ClipTextEncoder model = p.build<ClipTextEncoder>(c);
  const std::vector<int> ids((size_t)sequences * c.max_positions, 0);
  p.begin();
  Tensor pooled;  // SDXL's second encoder: the pooled output runs the last layer and the projection
  const Tensor out = model.forward(ids, sequences, 1, c.projection_dim > 0 ? &pooled : nullptr);
  return p.end();
}

PassCost unet_pass(const UNetConfig& c, int batch, int latent_h, int latent_w, int context_len, DType dtype,
                   int controlnets) {
  Pass p(dtype);
  const UNet model = p.build<UNet>(c);
  ControlNetConfig cc;
  cc.unet = c;
  cc.unet.in_channels = 4;
  std::vector<ControlNet> nets;
  for (int k = 0; k < controlnets; ++k) nets.push_back(p.build_more<ControlNet>(cc));
  const Tensor x = p.input({batch, latent_h, latent_w, c.in_channels});
  const Tensor x4 = p.input({batch, latent_h, latent_w, 4});
  CrossContext context{p.input({batch, context_len, c.cross_attention_dim}), {}, {}};
  // SDXL's added conditioning, made once per generation and held through the loop.
  if (c.text_time()) context.added = p.input({batch, c.time_embed_dim()});
  // The control images' hint embeddings are made once per generation and held through the loop.
  std::vector<Tensor> hints;
  for (int k = 0; k < controlnets; ++k) hints.push_back(p.input({batch, latent_h, latent_w, c.block_channels[0]}));
  const Tensor scales = Tensor::empty({1, (int64_t)controlnets * 64}, DType::F32, Device::Meta);
  const Tensor step = Tensor::empty({1}, DType::F32, Device::Meta);
  p.begin();
  const Tensor time_proj = ops::timestep_embedding(std::vector<float>((size_t)batch, 1.0f), c.block_channels[0],
                                                   dtype, Device::Meta);
  UNetControl control{{}, scales, step};
  // Every net's residuals are alive together when the UNet adds them (the step runs the nets first).
  for (size_t k = 0; k < nets.size(); ++k) {
    ControlResiduals r = nets[k].forward(x4, time_proj, context, hints[k]);
    r.first_column = (int64_t)(k * (nets[k].down_residuals() + 1));
    control.nets.push_back(std::move(r));
  }
  const Tensor out = model.forward(x, time_proj, context, nullptr, nets.empty() ? nullptr : &control);
  return p.end();
}

PassCost vae_decoder_pass(const VaeConfig& c, int images, int height, int width, DType dtype) {
  Pass p(dtype);
  const VaeDecoder model = p.build<VaeDecoder>(c);
  const Tensor z = p.input({images, height / 8, width / 8, c.latent_channels});
  p.begin();
  const Tensor out = model.decode(z);
  return p.end();
}

PassCost vae_encoder_pass(const VaeConfig& c, int images, int height, int width, DType dtype) {
  Pass p(dtype);
  const VaeEncoder model = p.build<VaeEncoder>(c);
  const Tensor x = p.input({images, height, width, c.in_channels});
  p.begin();
  const Tensor out = model.moments(x);
  return p.end();
}

PassCost taesd_decoder_pass(const TaesdConfig& c, int images, int height, int width, DType dtype) {
  Pass p(dtype);
  const TaesdDecoder model = p.build<TaesdDecoder>(c);
  const int f = model.upscale();
  const Tensor z = p.input({images, height / f, width / f, c.latent_channels});
  p.begin();
  const Tensor out = model.decode(z);
  return p.end();
}

int64_t clip_parameters(const ClipConfig& c) { return Pass(DType::F32).parameters<ClipTextEncoder>(c); }
int64_t unet_parameters(const UNetConfig& c) { return Pass(DType::F32).parameters<UNet>(c); }
int64_t controlnet_parameters(const UNetConfig& c) {
  ControlNetConfig cc;
  cc.unet = c;
  cc.unet.in_channels = 4;
  return Pass(DType::F32).parameters<ControlNet>(cc);
}
int64_t vae_decoder_parameters(const VaeConfig& c) { return Pass(DType::F32).parameters<VaeDecoder>(c); }
int64_t vae_encoder_parameters(const VaeConfig& c) { return Pass(DType::F32).parameters<VaeEncoder>(c); }

double vae_encoder_flops(const VaeConfig& c, int images, int height, int width) {
  return vae_encoder_pass(c, images, height, width).flops;
}

double clip_flops(const ClipConfig& c, int sequences) { return clip_pass(c, sequences).flops; }

double unet_flops(const UNetConfig& c, int batch, int latent_h, int latent_w, int context_len) {
  return unet_pass(c, batch, latent_h, latent_w, context_len).flops;
}

double vae_decoder_flops(const VaeConfig& c, int images, int height, int width) {
  return vae_decoder_pass(c, images, height, width).flops;
}

WorkloadFlops workload_flops(const ModelConfig& m, int batch, int width, int height, int steps,
                             float guidance) {
  WorkloadFlops w;
  const bool cfg = guidance > 1.0f;  // as the pipeline: the unconditional half only then
  w.text_sequences = cfg ? 2 : 1;
  w.unet_batch = cfg ? 2 * batch : batch;
  w.clip = clip_flops(m.clip, w.text_sequences) + (m.sdxl() ? clip_flops(m.clip2, w.text_sequences) : 0.0);
  w.unet_per_step = unet_flops(m.unet, w.unet_batch, height / 8, width / 8, m.clip.max_positions);
  w.vae = vae_decoder_flops(m.vae, batch, height, width);
  w.total = w.clip + steps * w.unet_per_step + w.vae;
  return w;
}

}  // namespace sdgen
