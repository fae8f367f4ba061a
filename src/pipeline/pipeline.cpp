#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/rng.h"
#include "core/trace.h"
#include "io/checkpoint.h"
#include "sampler/ddim.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"
#include "text/clip.h"
#include "text/tokenizer.h"
#include "unet/unet.h"
#include "vae/vae.h"

namespace sdgen {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string find_bpe_vocab() {
  for (std::string dir : {std::string("weights"), std::string(SDGEN_SOURCE_DIR) + "/weights"}) {
    std::string p = dir + "/bpe_simple_vocab_16e6.txt.gz";
    if (std::filesystem::exists(p)) return p;
  }
  throw_model("the CLIP vocabulary weights/bpe_simple_vocab_16e6.txt.gz was not found");
}
}  // namespace

Pipeline::Pipeline(const std::string& model_path, DType precision, Device device, LogCallback log)
    : precision_(precision), device_(device), log_(std::move(log)) {
  trace::phase("weight_load");
  checkpoint_ = Checkpoint::open(model_path);
  auto vocab = checkpoint_->tokenizer_vocab_json();
  auto merges = checkpoint_->tokenizer_merges_txt();
  tokenizer_ = std::make_unique<ClipTokenizer>(
      vocab && merges ? ClipTokenizer::from_vocab_merges(*vocab, *merges)
                      : ClipTokenizer::from_bpe_gz(find_bpe_vocab()));
  const ModelConfig& cfg = checkpoint_->config();
  clip_ = std::make_unique<ClipTextEncoder>(*checkpoint_, cfg.clip, precision, device);
  unet_ = std::make_unique<UNet>(*checkpoint_, cfg.unet, precision, device);
  vae_ = std::make_unique<VaeDecoder>(*checkpoint_, cfg.vae, precision, device);
  trace::phase("");
}

Pipeline::~Pipeline() = default;

std::string Pipeline::model_name() const { return checkpoint_->name(); }

std::vector<int> Pipeline::tokenize(const std::vector<std::string>& prompts) {
  std::vector<int> ids;
  for (const std::string& p : prompts) {
    bool truncated = false;
    std::vector<int> one = tokenizer_->encode_padded(p, &truncated);
    if (truncated && log_)
      log_("warning: prompt longer than 77 tokens, truncated: \"" + p.substr(0, 60) + (p.size() > 60 ? "...\"" : "\""));
    ids.insert(ids.end(), one.begin(), one.end());
  }
  return ids;
}

std::vector<float> Pipeline::initial_noise(uint64_t seed, int batch, int latent_h, int latent_w) {
  TorchCpuRandn rng(seed);
  return rng.randn((size_t)batch * 4 * latent_h * latent_w);
}

Tensor Pipeline::to_device_f32(const std::vector<float>& nchw, int n, int c, int h, int w) const {
  std::vector<float> nhwc(nchw.size());
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          nhwc[(((size_t)b * h + y) * w + x) * c + ch] = nchw[(((size_t)b * c + ch) * h + y) * w + x];
  return Tensor::from_floats({n, h, w, c}, nhwc).to(device_);
}

std::vector<float> Pipeline::to_nchw(const Tensor& nhwc) {
  std::vector<float> v = nhwc.to_floats();
  const int64_t n = nhwc.dim(0), h = nhwc.dim(1), w = nhwc.dim(2), c = nhwc.dim(3);
  std::vector<float> out(v.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch)
          out[((b * c + ch) * h + y) * w + x] = v[((b * h + y) * w + x) * c + ch];
  return out;
}

std::vector<std::vector<uint8_t>> Pipeline::to_uint8(const Tensor& images) {
  std::vector<float> v = images.to_floats();
  const int64_t n = images.dim(0);
  const size_t per = v.size() / (size_t)n;
  std::vector<std::vector<uint8_t>> out(n, std::vector<uint8_t>(per));
  for (int64_t b = 0; b < n; ++b) {
    for (size_t k = 0; k < per; ++k) {
      // diffusers: (x / 2 + 0.5).clamp(0, 1) in float32, then numpy (x * 255).round() — round half
      // to even, which nearbyint does in the default rounding mode.
      float x = v[b * per + k] / 2.0f + 0.5f;
      x = std::min(std::max(x, 0.0f), 1.0f);
      out[b][k] = (uint8_t)std::nearbyint(x * 255.0f);
    }
  }
  return out;
}

GeneratedBatch Pipeline::generate(const GenerateParams& p, const StepCallback& on_step) {
  if (p.sampler != "ddim") throw_usage("sampler '" + p.sampler + "' is not available (ddim)");
  const auto t_start = Clock::now();
  const std::vector<std::string> positive = p.prompts.empty() ? std::vector<std::string>{p.prompt} : p.prompts;
  const int P = (int)positive.size();
  const int B = P * p.batch;  // images in the batch
  const int lh = p.height / 8, lw = p.width / 8;
  const int lc = checkpoint_->config().unet.in_channels;
  // diffusers runs the unconditional half only when guidance > 1.
  const bool cfg_guidance = p.guidance > 1.0f;
  GeneratedBatch out;
  out.width = p.width;
  out.height = p.height;

  // Text: one CLIP call for the negative prompt (once per positive prompt, as diffusers repeats
  // it) and the positive prompts (these alone without guidance); each row is repeated per image,
  // unconditional rows first.
  auto t0 = Clock::now();
  trace::phase("text_encoder");
  std::vector<std::string> prompts;
  if (cfg_guidance) prompts.assign(P, p.negative_prompt);
  prompts.insert(prompts.end(), positive.begin(), positive.end());
  Tensor hidden = clip_->forward(tokenize(prompts), (int)prompts.size());  // [P or 2P, 77, D]
  const int64_t L = hidden.dim(1), D = hidden.dim(2);
  std::vector<float> hv = hidden.to_floats();
  std::vector<float> ctx;
  const int rows = (int)prompts.size() * p.batch;
  for (int r = 0; r < rows; ++r) {
    const int64_t which = r / p.batch;
    ctx.insert(ctx.end(), hv.begin() + which * L * D, hv.begin() + (which + 1) * L * D);
  }
  Tensor context = Tensor::from_floats({rows, L, D}, ctx);
  if (precision_ != DType::F32) context = ops::cast(context, precision_);
  context = context.to(device_);
  out.times.text_s = seconds_since(t0);

  // Sampling. The latents (fp32, as diffusers keeps them), the schedule and the step index live in
  // tensors on the model's device and one step reads no host value (ops.h, "sampler"), so the
  // latents stay on the device for the whole loop and a step can be recorded once and replayed.
  t0 = Clock::now();
  trace::phase("sampling_setup");
  if (lc != 4) throw_model("the UNet must take 4 latent channels, this one takes " + std::to_string(lc));
  const DdimSampler sampler(checkpoint_->config().scheduler, p.steps);
  Tensor x = to_device_f32(initial_noise(p.seed, B, lh, lw), B, lc, lh, lw);
  const std::vector<float> ts(sampler.timesteps().begin(), sampler.timesteps().end());
  const Tensor timesteps = Tensor::from_floats({p.steps}, ts).to(device_);
  const Tensor coefs = Tensor::from_floats({p.steps, 4}, sampler.coefficients()).to(device_);
  Tensor step = Tensor::from_floats({1}, {0.0f}).to(device_);
  const int time_dim = checkpoint_->config().unet.block_channels[0];
  auto denoise_step = [&] {
    const Tensor xin = ops::repeat_batch(x, cfg_guidance ? 2 : 1, precision_);
    const Tensor time_proj = ops::timestep_embedding_at(timesteps, step, rows, time_dim, precision_);
    ops::ddim_step(x, unet_->forward(xin, time_proj, context), coefs, step, p.guidance);
  };
  // Recording one step runs nothing but plans it: every buffer it needs is allocated now, before
  // the loop, and stays cached for the replays (or, without graphs, for the eager steps). Backends
  // without graphs return none and run every step eagerly.
  std::unique_ptr<Graph> graph = backend_for(device_).capture(denoise_step);
  if (!p.cuda_graphs) graph.reset();
  if (on_step) on_step(0, p.steps);
  for (int i = 0; i < p.steps; ++i) {
    trace::phase("unet_step", i);
    if (graph)
      graph->launch();
    else
      denoise_step();
    if (on_step) on_step(i + 1, p.steps);
  }
  graph.reset();
  trace::phase("vae_decode");
  out.latents = to_nchw(x);  // the one download of the latents; waits for the last step
  out.times.unet_s = seconds_since(t0);
  // The decoder's buffers differ in size from the UNet's: hand the UNet's back first, so the two
  // working sets do not add up in the peak.
  backend_for(device_).release_cached_memory();

  // Decode one image at a time: the VAE's activations dominate the memory peak at 512×512.
  t0 = Clock::now();
  for (int b = 0; b < B; ++b) out.images.push_back(std::move(to_uint8(vae_->decode(x.slice0(b, b + 1)))[0]));
  out.times.vae_s = seconds_since(t0);
  trace::phase("");
  out.times.total_s = seconds_since(t_start);
  out.peak_device_bytes = backend_for(device_).peak_memory_bytes();
  return out;
}

}  // namespace sdgen
