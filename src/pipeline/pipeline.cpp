#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/rng.h"
#include "io/checkpoint.h"
#include "sampler/ddim.h"
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

Tensor Pipeline::to_model_layout(const std::vector<float>& nchw, int n, int c, int h, int w) const {
  std::vector<float> nhwc(nchw.size());
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          nhwc[(((size_t)b * h + y) * w + x) * c + ch] = nchw[(((size_t)b * c + ch) * h + y) * w + x];
  Tensor t = Tensor::from_floats({n, h, w, c}, nhwc);
  if (precision_ != DType::F32) t = ops::cast(t, precision_);
  return t.to(device_);
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

  // Sampling. Latents stay fp32 on the host (the sampler's arithmetic is diffusers' float32).
  t0 = Clock::now();
  DdimSampler sampler(checkpoint_->config().scheduler, p.steps);
  std::vector<float> x = initial_noise(p.seed, B, lh, lw);
  if (lc != 4) throw_model("the UNet must take 4 latent channels, this one takes " + std::to_string(lc));
  const size_t n = x.size();
  std::vector<float> eps(n), model_in;
  if (on_step) on_step(0, p.steps);
  for (int i = 0; i < p.steps; ++i) {
    model_in = x;
    if (cfg_guidance) model_in.insert(model_in.end(), x.begin(), x.end());
    Tensor xin = to_model_layout(model_in, rows, lc, lh, lw);
    std::vector<float> t(rows, (float)sampler.timesteps()[i]);
    std::vector<float> e = to_nchw(unet_->forward(xin, t, context));
    if (cfg_guidance) {
      DdimSampler::guide(e.data(), e.data() + n, p.guidance, eps.data(), n);
    } else {
      std::copy(e.begin(), e.begin() + n, eps.begin());
    }
    sampler.step(i, eps.data(), x.data(), n);
    if (on_step) on_step(i + 1, p.steps);
  }
  out.times.unet_s = seconds_since(t0);
  out.latents = x;

  // Decode one image at a time: the VAE's activations dominate the memory peak at 512×512.
  t0 = Clock::now();
  const size_t per = (size_t)lc * lh * lw;
  for (int b = 0; b < B; ++b) {
    std::vector<float> one(x.begin() + b * per, x.begin() + (b + 1) * per);
    Tensor img = vae_->decode(to_model_layout(one, 1, lc, lh, lw));
    auto u8 = to_uint8(img);
    out.images.push_back(std::move(u8[0]));
  }
  out.times.vae_s = seconds_since(t0);
  out.times.total_s = seconds_since(t_start);
  return out;
}

}  // namespace sdgen
