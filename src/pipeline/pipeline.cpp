#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/device_memory.h"
#include "core/rng.h"
#include "core/trace.h"
#include "io/checkpoint.h"
#include "io/lora.h"
#include "io/vae_file.h"
#include "io/weights_dir.h"
#include "pipeline/inpaint_area.h"
#include "pipeline/loop_state.h"
#include "sampler/sampler.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"
#include "text/clip.h"
#include "text/conditioning.h"
#include "text/embeddings.h"
#include "text/tokenizer.h"
#include "unet/controlnet.h"
#include "unet/unet.h"
#include "io/taesd_file.h"
#include "vae/taesd.h"
#include "vae/vae.h"
#include "vae/vae_encoder.h"

namespace sdgen {

namespace {

// A 9-channel model's extra input channels for all UNet rows (the unconditional half, when guided,
// reads the same ones: diffusers' torch.cat([mask] * 2)), in the model's dtype, on the host.
Tensor cond_rows(const Tensor& cond, int rows, DType dtype) {
  const std::vector<float> one = cond.to_floats();
  std::vector<float> all;
  for (int r = 0; r < rows; r += cond.dim(0)) all.insert(all.end(), one.begin(), one.end());
  Shape s = cond.shape();
  s[0] = rows;
  const Tensor t = Tensor::from_floats(s, all);
  return dtype == DType::F32 ? t : ops::cast(t, dtype);
}
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string find_bpe_vocab() {
  const std::string path = find_weights_file({"bpe_simple_vocab_16e6.txt.gz"});
  if (path.empty()) throw_model("the CLIP vocabulary weights/bpe_simple_vocab_16e6.txt.gz was not found");
  return path;
}
}  // namespace

Pipeline::Pipeline(const std::string& model_path, DType precision, Device device, LogCallback log,
                   const ModelOptions& options, const std::function<void(const ModelConfig&)>& before_weights)
    : precision_(precision), device_(device), log_(std::move(log)) {
  release_kept_host_blocks();  // an earlier model's blocks: this one's peak is its own
  trace::phase("weight_load");
  checkpoint_ = Checkpoint::open(model_path, OpenOptions{options.ema});
  if (log_)
    for (const std::string& note : checkpoint_->notes()) log_(note);
  auto vocab = checkpoint_->tokenizer_vocab_json();
  auto merges = checkpoint_->tokenizer_merges_txt();
  auto tok_json = checkpoint_->tokenizer_json();
  // The folder's own tokenizer files (transformers 4's pair, else transformers 5's tokenizer.json),
  // else OpenAI's BPE list from weights/.
  tokenizer_ = std::make_unique<ClipTokenizer>(
      vocab && merges ? ClipTokenizer::from_vocab_merges(*vocab, *merges)
      : tok_json      ? ClipTokenizer::from_tokenizer_json(*tok_json)
                      : ClipTokenizer::from_bpe_gz(find_bpe_vocab()));
  const ModelConfig& cfg = checkpoint_->config();
  tokenizer_->set_padding(cfg.tokenizer.pad_token, cfg.tokenizer.pad_special);
  if (cfg.sdxl()) {
    // SDXL's two tokenizers share the BPE vocabulary; the second pads with its own token ("!").
    tokenizer2_ = std::make_unique<ClipTokenizer>(*tokenizer_);
    tokenizer2_->set_padding(cfg.tokenizer2.pad_token, cfg.tokenizer2.pad_special);
  }
  if (before_weights) before_weights(cfg);
  // A TAESD file that cannot decode these latents is refused before the big weights load.
  vae_config_ = cfg.vae;
  if (!options.vae_tiny.empty()) load_taesd(options.vae_tiny);
  // Embeddings are read (and checked) before any model weight is loaded.
  // SDXL's hold one set of vectors per text encoder (clip_l, clip_g), as many in each.
  std::vector<Embedding> embeddings, embeddings2;
  for (const EmbeddingSpec& spec : options.embeddings) {
    embeddings.push_back(load_embedding(spec, cfg.clip.hidden, cfg.sdxl() ? "clip_l" : nullptr));
    if (!cfg.sdxl()) continue;
    embeddings2.push_back(load_embedding(spec, cfg.clip2.hidden, "clip_g"));
    if (embeddings2.back().vectors.dim(0) != embeddings.back().vectors.dim(0))
      throw_model("--embedding " + spec.file + ": " + std::to_string(embeddings.back().vectors.dim(0)) +
                  " clip_l vectors but " + std::to_string(embeddings2.back().vectors.dim(0)) +
                  " clip_g vectors; an SDXL embedding has as many for each text encoder");
  }
  // LoRAs: their deltas are added to the weights as the models load them.
  std::unique_ptr<Checkpoint> merged;
  if (!options.loras.empty()) merged = apply_loras(*checkpoint_, options.loras, log_);
  const Checkpoint& weights = merged ? *merged : *checkpoint_;
  clip_ = std::make_unique<ClipTextEncoder>(weights, cfg.clip, precision, device);
  if (cfg.sdxl()) clip2_ = std::make_unique<ClipTextEncoder>(weights, cfg.clip2, precision, device, "text_encoder_2");
  add_embeddings(embeddings, *tokenizer_, *clip_);
  if (clip2_) add_embeddings(embeddings2, *tokenizer2_, *clip2_);
  unet_ = std::make_unique<UNet>(weights, cfg.unet, precision, device);
  for (const std::string& path : options.controlnets) controlnet(path);
  if (!options.vae.empty()) {
    VaeFile vf = open_vae_file(options.vae, cfg);
    vae_config_ = vf.config;
    vae_weights_ = std::move(vf.weights);
    vae_name_ = vf.name;
  }
  const Checkpoint& vae_weights = vae_weights_ ? *vae_weights_ : *checkpoint_;
  // force_upcast (SDXL's VAE, which overflows fp16): the autoencoder runs in fp32, as diffusers' SDXL
  // pipelines do. Its SD v1/2 pipelines ignore the flag (which every VAE config written by diffusers
  // carries, true by default), and so does sd-gen there.
  vae_dtype_ = cfg.sdxl() && vae_config_.force_upcast ? DType::F32 : precision;
  if (!taesd_) vae_ = std::make_unique<VaeDecoder>(vae_weights, vae_config_, vae_dtype_, device);
  if (options.need_encoder) vae_encoder_ = std::make_unique<VaeEncoder>(vae_weights, vae_config_, vae_dtype_, device);
  trace::phase("");
}


std::vector<float> SizeConditioning::time_ids(int width, int height, bool negative) const {
  auto size = [](int v, int generation) { return (float)(v > 0 ? v : generation); };
  if (negative && negative_own)
    return {size(neg_original_h, height), size(neg_original_w, width), (float)neg_crop_top, (float)neg_crop_left,
            size(neg_target_h, height),   size(neg_target_w, width)};
  return {size(original_h, height), size(original_w, width), (float)crop_top, (float)crop_left,
          size(target_h, height),   size(target_w, width)};
}

Pipeline::~Pipeline() = default;

void Pipeline::load_taesd(const std::string& path) {
  TaesdFile tf = open_taesd_file(path);
  if (!tf.has_decoder)
    throw_model("--vae-tiny " + path + ": a TAESD encoder only; decoding needs its decoder (taesd_decoder.safetensors "
                "beside it, or a diffusers AutoencoderTiny folder)");
  const int factor = 1 << (int)(tf.config.decoder_blocks.size() - 1);
  if (factor != 8 || tf.config.latent_channels != vae_config_.latent_channels || tf.config.out_channels != 3)
    throw_model("--vae-tiny " + path + ": this TAESD decodes " + std::to_string(tf.config.latent_channels) +
                " latent channels upscaled " + std::to_string(factor) + "x to " + std::to_string(tf.config.out_channels) +
                " channels; the model's latents need " + std::to_string(vae_config_.latent_channels) + ", 8x, RGB");
  taesd_ = std::make_unique<TaesdDecoder>(*tf.weights, tf.config, precision_, device_);
  taesd_has_encoder_ = tf.has_encoder;
  taesd_weights_ = std::move(tf.weights);
  taesd_config_ = tf.config;
  taesd_name_ = tf.name;
}

Tensor Pipeline::decode_latents(const Tensor& latents, DType dtype) {
  if (taesd_) {
    if (dtype == precision_) return taesd_->decode(latents);
    if (!taesd_fp32_) taesd_fp32_ = std::make_unique<TaesdDecoder>(*taesd_weights_, taesd_config_, dtype, device_);
    return taesd_fp32_->decode(latents);
  }
  if (dtype == precision_ || dtype == vae_dtype_) return vae_->decode(latents);
  if (!vae_fp32_)  // --vae's decoder when given, as vae_'s
    vae_fp32_ = std::make_unique<VaeDecoder>(vae_weights_ ? *vae_weights_ : *checkpoint_, vae_config_, dtype, device_);
  return vae_fp32_->decode(latents);
}

std::string Pipeline::model_name() const { return checkpoint_->name(); }

std::vector<float> Pipeline::initial_noise(uint64_t seed, int batch, int latent_h, int latent_w) {
  return initial_noise(RngKind::TorchCpu, SeedMode::Batch, seed, batch, latent_h, latent_w);
}

std::vector<float> Pipeline::initial_noise(RngKind rng, SeedMode mode, uint64_t seed, int batch, int latent_h,
                                           int latent_w) {
  LatentNoise noise(rng, mode, seed, batch);
  return noise.draw((size_t)4 * latent_h * latent_w);
}

Tensor Pipeline::to_device_f32(const std::vector<float>& nchw, int n, int c, int h, int w) const {
  return to_nhwc_host(nchw, n, c, h, w).to(device_);
}

Tensor Pipeline::to_nhwc_host(const std::vector<float>& nchw, int n, int c, int h, int w) {
  std::vector<float> nhwc(nchw.size());
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          nhwc[(((size_t)b * h + y) * w + x) * c + ch] = nchw[(((size_t)b * c + ch) * h + y) * w + x];
  return Tensor::from_floats({n, h, w, c}, nhwc);
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

Pipeline::TextContext Pipeline::encode_context(const GenerateParams& p, const std::vector<std::string>& positive,
                                               bool guided) {
  // Text: one CLIP call for the negative prompt (once per positive prompt, as diffusers repeats
  // it) and the positive prompts (these alone without guidance); each row is repeated per image,
  // unconditional rows first.
  trace::phase("text_encoder");
  if (!clip2_ && (!p.prompt_2.empty() || !p.negative_prompt_2.empty()))
    throw_usage(checkpoint_->name() + " has one text encoder: --prompt-2 and --negative-prompt-2 are for SDXL's second");
  std::vector<std::string> prompts;
  const int P = (int)positive.size();
  if (guided) prompts.assign(P, p.negative_prompt);
  prompts.insert(prompts.end(), positive.begin(), positive.end());
  // [P or 2P, k·77, D]: k chunks of 77 tokens, the same k for all (conditioning.h).
  ConditioningOptions copt;
  copt.emphasis = p.emphasis;
  // Clip skip applies to the prompts alone, as diffusers' clip_skip: the rows after the negatives.
  copt.clip_skip = p.clip_skip;
  copt.clip_skip_from_row = guided ? P : 0;
  copt.text_cleanup = p.text_cleanup;
  Conditioning cond = encode_prompts(*tokenizer_, *clip_, prompts, copt, log_);
  if (clip2_) {
    std::vector<std::string> second(prompts);
    const int negatives = guided ? P : 0;
    for (int i = 0; i < (int)second.size(); ++i) {
      const std::string& own = i < negatives ? p.negative_prompt_2 : p.prompt_2;
      if (!own.empty()) second[i] = own;
    }
    cond = encode_second(p, prompts, second, copt, std::move(cond), negatives);
  }
  const int64_t L = cond.tokens(), D = cond.dim;
  const std::vector<float>& hv = cond.hidden;
  std::vector<float> ctx, pooled, time_ids;
  const int rows = (int)prompts.size() * p.batch;
  const std::vector<float> negative_ids = p.size_cond.time_ids(p.width, p.height, true);
  const std::vector<float> positive_ids = p.size_cond.time_ids(p.width, p.height, false);
  for (int r = 0; r < rows; ++r) {
    const int64_t which = r / p.batch;
    ctx.insert(ctx.end(), hv.begin() + which * L * D, hv.begin() + (which + 1) * L * D);
    if (cond.pooled.empty()) continue;
    pooled.insert(pooled.end(), cond.pooled.begin() + which * cond.pooled_dim,
                  cond.pooled.begin() + (which + 1) * cond.pooled_dim);
    const std::vector<float>& ids = guided && which < P ? negative_ids : positive_ids;
    time_ids.insert(time_ids.end(), ids.begin(), ids.end());
  }
  Tensor context = Tensor::from_floats({rows, L, D}, ctx);
  if (precision_ != DType::F32) context = ops::cast(context, precision_);
  TextContext out{context.to(device_), rows, L, {}, {}};
  if (!pooled.empty()) {
    out.pooled = Tensor::from_floats({rows, cond.pooled_dim}, pooled);
    out.time_ids = std::move(time_ids);
  }
  return out;
}

Conditioning Pipeline::encode_second(const GenerateParams& p, const std::vector<std::string>& prompts,
                                     const std::vector<std::string>& prompts2, ConditioningOptions copt,
                                     Conditioning first, int negatives) {
  // SDXL: the second encoder's context (of prompts2, its own texts) after the first's along the
  // width, and its pooled output. Its texts can be longer than the first's, and even the same text
  // chunks differently when it holds "!" (a special token to the second tokenizer of a folder), so
  // the chunk counts are matched before the two are joined.
  copt.min_chunks = first.chunks;
  Conditioning second = encode_prompts(*tokenizer2_, *clip2_, prompts2, copt, nullptr);
  if (second.chunks > first.chunks) {
    copt.min_chunks = second.chunks;
    first = encode_prompts(*tokenizer_, *clip_, prompts, copt, nullptr);
  }
  const int64_t L = first.tokens(), D1 = first.dim, D2 = second.dim;
  Conditioning out;
  out.rows = first.rows;
  out.chunks = first.chunks;
  out.dim = D1 + D2;
  out.hidden.resize((size_t)(out.rows * L * out.dim));
  for (int64_t t = 0; t < out.rows * L; ++t) {
    std::copy_n(first.hidden.begin() + t * D1, D1, out.hidden.begin() + t * out.dim);
    std::copy_n(second.hidden.begin() + t * D2, D2, out.hidden.begin() + t * out.dim + D1);
  }
  out.pooled = std::move(second.pooled);
  out.pooled_dim = second.pooled_dim;
  // diffusers' force_zeros_for_empty_prompt: an empty negative prompt is zeros, not the empty text.
  if (checkpoint_->config().force_zeros_for_empty_prompt && p.negative_prompt.empty() && p.negative_prompt_2.empty()) {
    std::fill_n(out.hidden.begin(), (size_t)(negatives * L * out.dim), 0.0f);
    std::fill_n(out.pooled.begin(), (size_t)(negatives * out.pooled_dim), 0.0f);
  }
  return out;
}

void Pipeline::decode_images(const GenerateParams& p, const Tensor& latents, int B, GeneratedBatch& out) {
  // Decode vae_batch images per pass into one 8-bit tensor on the device, downloaded once.
  const int per_pass = std::max(1, std::min(B, p.vae_batch));
  const int oc = taesd_ ? taesd_config_.out_channels : vae_config_.out_channels;
  Tensor pixels = Tensor::empty({B, p.height, p.width, oc}, DType::U8, device_);
  // Non-finite guard: NaN/Inf latents cannot give an image; a non-finite fp16 decode (overflow) is
  // decoded once more in fp32; what is still not finite is reported, never written as black.
  auto finite = [](const float* v, size_t n) {
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(v[i])) return false;
    return true;
  };
  out.not_finite.assign(B, std::string());
  // A 16-bit decode gets one retry in fp32; a VAE that runs in fp32 anyway (force_upcast) none.
  const bool half_decode = is_half_dtype(taesd_ ? precision_ : vae_dtype_);
  const size_t latent_per_image = out.latents.size() / (size_t)B;
  for (int b = 0; b < B && p.check_finite; ++b)
    if (!finite(out.latents.data() + b * latent_per_image, latent_per_image)) out.not_finite[b] = "the final latents";
  for (int b = 0; b < B; b += per_pass) {
    const int e = std::min(B, b + per_pass);
    Tensor part = pixels.slice0(b, e);
    const Tensor decoded = decode_latents(latents.slice0(b, e), precision_);
    ops::image_to_u8(decoded, part);
    if (!p.check_finite) continue;
    const std::vector<float> host = decoded.to_floats();
    const size_t per = host.size() / (size_t)(e - b);
    for (int i = b; i < e; ++i) {
      if (!out.not_finite[i].empty() || finite(host.data() + (size_t)(i - b) * per, per)) continue;
      if (half_decode) {
        if (log_) log_("image " + std::to_string(i) + ": the " + dtype_name(precision_) + " VAE decode is not finite (NaN/Inf); decoding it again in fp32");
        const Tensor again = decode_latents(latents.slice0(i, i + 1), DType::F32);
        const std::vector<float> again_host = again.to_floats();
        if (finite(again_host.data(), again_host.size())) {
          Tensor one = pixels.slice0(i, i + 1);
          ops::image_to_u8(again, one);
          continue;
        }
      }
      out.not_finite[i] = half_decode
                              ? std::string("the decoded image (") + dtype_name(precision_) + ", and again in fp32)"
                              : "the decoded image";
    }
  }
  const Tensor host_pixels = pixels.to(Device::CPU);
  const size_t per_image = (size_t)p.height * p.width * oc;
  for (int b = 0; b < B; ++b) {
    const uint8_t* src = host_pixels.data_as<uint8_t>() + b * per_image;
    out.images.emplace_back(src, src + per_image);
  }
}

// A preview of the unit's estimate x0 (NHWC [B, h, w, 4] fp32 on the device): decoded by TAESD when
// it is loaded and the caller takes pictures, else handed over as latents. The copy to the host is
// queued behind the unit and not waited for here: the caller queues the next unit first, so the
// device does not stand idle while the host waits for the copy and writes the preview.
Pipeline::PendingPreview Pipeline::start_preview(const GenerateParams& p, const Tensor& x0, int done, int units) {
  PendingPreview pending;
  pending.done = done;
  pending.units = units;
  pending.pictures = taesd_ && p.preview_pictures;
  Backend& backend = backend_for(device_);
  if (!pending.pictures) {
    pending.copy = backend.download_async(x0);
    return pending;
  }
  const Tensor decoded = decode_latents(x0, precision_);
  Tensor pixels = Tensor::empty({x0.dim(0), decoded.dim(1), decoded.dim(2), decoded.dim(3)}, DType::U8, device_);
  ops::image_to_u8(decoded, pixels);
  pending.copy = backend.download_async(pixels);
  return pending;
}

void Pipeline::show_preview(const GenerateParams& p, PendingPreview& pending) {
  if (!pending.copy) return;
  const Tensor host = pending.copy->wait();
  pending.copy.reset();
  const int B = (int)host.dim(0);
  if (!pending.pictures) {
    p.preview(pending.done, pending.units, to_nchw(host), B, (int)host.dim(1), (int)host.dim(2));
    return;
  }
  std::vector<RgbImage> pictures((size_t)B);
  const size_t per = (size_t)host.numel() / (size_t)B;
  for (int b = 0; b < B; ++b) {
    pictures[(size_t)b].width = (int)host.dim(2);
    pictures[(size_t)b].height = (int)host.dim(1);
    const uint8_t* src = host.data_as<uint8_t>() + (size_t)b * per;
    pictures[(size_t)b].pixels.assign(src, src + per);
  }
  p.preview_pictures(pending.done, pending.units, pictures);
}

SchedulerConfig Pipeline::scheduler_config(const GenerateParams& p) const {
  SchedulerConfig s = checkpoint_->config().scheduler;
  if (!p.prediction_type.empty()) s.prediction_type = p.prediction_type;
  return s;
}

GeneratedBatch Pipeline::generate(const GenerateParams& p, const StepCallback& on_step) {
  if (p.hires.enabled()) return generate_hires(p, on_step);
  if (p.mask && p.inpaint_masked && !p.controls.empty())
    throw_usage("ControlNet with --inpaint-area masked is not supported: the control image would need the same crop");
  if (p.mask && (p.mask_blur > 0 || p.inpaint_masked)) return generate_inpaint_area(*this, p, on_step);
  const SamplerOptions& sampler_opts = p.sampler;
  const SchedulerConfig sched = scheduler_config(p);
  const bool hires_pass = p.init_latents || p.init_pictures;
  const int begin = p.init_image || hires_pass ? img2img_begin(p.steps, p.strength) : 0;
  const SamplerPlan plan = plan_sampler(sampler_opts, sched, p.steps, begin);  // checks the options
  const auto t_start = Clock::now();
  const std::vector<std::string> positive = p.prompts.empty() ? std::vector<std::string>{p.prompt} : p.prompts;
  const int P = (int)positive.size();
  const int B = P * p.batch;  // images in the batch
  const int lh = p.height / 8, lw = p.width / 8;
  const int lc = checkpoint_->config().unet.out_channels;  // the latents' channels
  const bool nine = checkpoint_->config().unet.in_channels == 9;  // an inpainting model (img2img.cpp)
  // diffusers runs the unconditional half only when guidance > 1.
  const bool cfg_guidance = p.guidance > 1.0f;
  GeneratedBatch out;
  out.width = p.width;
  out.height = p.height;

  auto t0 = Clock::now();
  const TextContext text = encode_context(p, positive, cfg_guidance);
  const int rows = text.rows;
  const int64_t L = text.tokens;
  const Tensor& context = text.context;
  out.times.text_s = seconds_since(t0);

  // Sampling. The latents (fp32, as diffusers keeps them), the schedule and the step index live in
  // tensors on the model's device and one step reads no host value (ops.h, "sampler"), so the
  // latents stay on the device for the whole loop and a step can be recorded once and replayed.
  t0 = Clock::now();
  trace::phase("sampling_setup");
  const int in_ch = checkpoint_->config().unet.in_channels;
  if (lc != 4 || (in_ch != 4 && !nine))
    throw_model("the UNet must take 4 latent channels (9 for an inpainting model) and predict 4, this one takes " +
                std::to_string(in_ch) + " and predicts " + std::to_string(lc));
  if (nine && !p.mask)
    throw_usage(checkpoint_->name() + " is an inpainting model (its UNet takes 9 channels): it needs --init-image "
                "and --mask");
  // The generator(s) of this generation (core/rng.h): the initial latents are their first draw,
  // then each stochastic unit's noise, in diffusers' order.
  LatentNoise noise_source(p.rng, p.seed_mode, p.seed, B);
  const size_t latent_numel = (size_t)B * lc * lh * lw;
  std::vector<float> init;  // the initial latents, NCHW
  Start start;
  if (p.init_image) {
    trace::phase("vae_encode");
    start = init_latents(p, plan, noise_source, B);
    init = start.x;
    // The encoder's buffers differ in size from the UNet's: handed back, they do not add to its peak.
    backend_for(device_).release_cached_memory();
    trace::phase("sampling_setup");
  } else if (hires_pass) {
    trace::phase("vae_encode");
    init = hires_start(p, plan, noise_source, B);
    backend_for(device_).release_cached_memory();
    trace::phase("sampling_setup");
  } else {
    init = noise_source.draw((size_t)lc * lh * lw);
    if (plan.init_sigma != 1.0f)
      for (float& v : init) v *= plan.init_sigma;
  }
  if (p.record_unit_latents) out.start_latents = init;
  for (int i = 0; i < B; ++i) out.seeds.push_back(noise_source.image_seed(i));
  std::vector<float> unit_noise;  // [units, B, h, w, c] NHWC, zeros where a unit draws none
  if (plan.stochastic()) {
    unit_noise.assign((size_t)plan.units * latent_numel, 0.0f);
    for (int u = 0; u < plan.units; ++u)
      if (plan.draws_noise[(size_t)u]) {
        const Tensor z = to_nhwc_host(noise_source.draw((size_t)lc * lh * lw), B, lc, lh, lw);
        std::copy(z.f32(), z.f32() + latent_numel, unit_noise.begin() + (ptrdiff_t)(u * latent_numel));
      }
  }
  const bool inpaint = start.mask.defined() || start.cond.defined();
  const bool preview = p.preview && p.preview_every > 0;
  const StepGraphKey key{B,       rows,    lh,   lw, (int)L, p.steps, begin, inpaint, preview, control_nets(p),
                         p.guess_mode, p.guidance, cfg_guidance ? p.guidance_rescale : 0.0f, sampler_opts};
  const int units = plan.units;
  const std::vector<float> zero_state((size_t)plan.state * latent_numel, 0.0f);
  Backend& backend = backend_for(device_);
  const bool reuse = loop_ && loop_->graph && p.cuda_graphs && loop_->key == key;
  if (reuse) {
    // The recorded step reads these buffers by address: refill them, the plan's tables too (the key
    // fixes the plan's shape; its values follow the scheduler config, which a generation may
    // override: GenerateParams::prediction_type).
    loop_->x.copy_from(to_nhwc_host(init, B, lc, lh, lw));
    loop_->timesteps.copy_from(Tensor::from_floats({units}, plan.timesteps));
    loop_->divisors.copy_from(Tensor::from_floats({units}, plan.in_divisor));
    loop_->coefs.copy_from(Tensor::from_floats({units, plan.row_width()}, plan.table));
    if (loop_->renoise.defined()) loop_->renoise.copy_from(Tensor::from_floats({units, 2}, plan.renoise));
    if (loop_->denoised.defined()) loop_->denoised.copy_from(Tensor::from_floats({units, 2}, plan.denoised));
    const CrossContext fresh = unet_->prepare_context(context);
    loop_->cross.hidden.copy_from(fresh.hidden);
    if (text.pooled.defined()) loop_->cross.added.copy_from(unet_->prepare_added(text.pooled, text.time_ids));
    for (const auto& [attention, kv] : fresh.kv) {
      loop_->cross.kv.at(attention).first.copy_from(kv.first);
      loop_->cross.kv.at(attention).second.copy_from(kv.second);
    }
    loop_->step.copy_from(Tensor::from_floats({1}, {0.0f}));
    if (inpaint) {
      loop_->inpaint_x0.copy_from(start.x0);
      loop_->inpaint_noise.copy_from(start.noise);
      if (nine)
        loop_->inpaint_cond.copy_from(cond_rows(start.cond, rows, precision_));
      else
        loop_->inpaint_mask.copy_from(start.mask);
    }
    if (loop_->state.defined()) loop_->state.copy_from(Tensor::from_floats(loop_->state.shape(), zero_state));
    if (loop_->noise.defined()) loop_->noise.copy_from(Tensor::from_floats(loop_->noise.shape(), unit_noise));
    set_control(p, plan, text, cfg_guidance, /*refill=*/true);
  } else {
    loop_.reset();  // its graph's buffers go back to the pool before the new ones are planned
    loop_ = std::make_unique<LoopState>();
    loop_->key = key;
    loop_->x = to_device_f32(init, B, lc, lh, lw);
    // The cross-attentions' keys and values of the context: once here, not in every step.
    loop_->cross = unet_->prepare_context(context);
    if (text.pooled.defined()) loop_->cross.added = unet_->prepare_added(text.pooled, text.time_ids);
    loop_->timesteps = Tensor::from_floats({units}, plan.timesteps).to(device_);
    loop_->divisors = Tensor::from_floats({units}, plan.in_divisor).to(device_);
    loop_->coefs = Tensor::from_floats({units, plan.row_width()}, plan.table).to(device_);
    if (plan.state > 0) {
      Shape s = loop_->x.shape();
      s.insert(s.begin(), plan.state);
      loop_->state = Tensor::from_floats(s, zero_state).to(device_);
    }
    if (!unit_noise.empty()) {
      Shape s = loop_->x.shape();
      s.insert(s.begin(), units);
      loop_->noise = Tensor::from_floats(s, unit_noise).to(device_);
    }
    loop_->step = Tensor::from_floats({1}, {0.0f}).to(device_);
    if (nine) {
      loop_->inpaint_cond = cond_rows(start.cond, rows, precision_).to(device_);
    } else if (inpaint) {
      loop_->inpaint_x0 = start.x0.to(device_);
      loop_->inpaint_noise = start.noise.to(device_);
      loop_->inpaint_mask = start.mask.to(device_);
      loop_->renoise = Tensor::from_floats({units, 2}, plan.renoise).to(device_);
    }
    if (preview) {
      loop_->denoised = Tensor::from_floats({units, 2}, plan.denoised).to(device_);
      loop_->preview = Tensor::zeros(loop_->x.shape()).to(device_);
    }
    set_control(p, plan, text, cfg_guidance, /*refill=*/false);
  }
  LoopState& st = *loop_;
  const int time_dim = checkpoint_->config().unet.block_channels[0];
  const float guidance = p.guidance, rescale = cfg_guidance ? p.guidance_rescale : 0.0f;
  auto denoise_step = [&st, this, cfg_guidance, rows, time_dim, guidance, rescale] {
    const int times = cfg_guidance ? 2 : 1;
    Tensor xin = ops::scale_repeat_batch(st.x, st.divisors, st.step, times, precision_);
    const Tensor time_proj = ops::timestep_embedding_at(st.timesteps, st.step, rows, time_dim, precision_);
    UNetControl control;
    if (!st.key.controls.empty()) {
      // Guess mode with guidance: the nets see the conditional rows alone, and the unconditional rows
      // get no residuals (diffusers adds zeros there).
      const bool cond_only = control_cond_only(cfg_guidance);
      const Tensor cx = cond_only ? ops::scale_repeat_batch(st.x, st.divisors, st.step, 1, precision_) : xin;
      const Tensor ct = cond_only ? ops::timestep_embedding_at(st.timesteps, st.step, rows / 2, time_dim, precision_)
                                  : time_proj;
      const size_t per = st.key.controls[0]->down_residuals() + 1;
      for (size_t k = 0; k < st.key.controls.size(); ++k) {
        ControlResiduals r = st.key.controls[k]->forward(cx, ct, st.control_cross[k], st.control_hint[k]);
        r.row_offset = cond_only ? rows / 2 : 0;
        r.first_column = (int64_t)(k * per);
        control.nets.push_back(std::move(r));
      }
      control.scales = st.control_scales;
      control.step = st.step;
    }
    if (st.inpaint_cond.defined()) xin = ops::concat_channels(xin, st.inpaint_cond);
    Tensor eps = unet_->forward(xin, time_proj, st.cross, nullptr, control.nets.empty() ? nullptr : &control);
    // Rescaled, the guided output has the batch's rows: the ops below take it as ε itself.
    if (rescale > 0.0f) eps = ops::guidance_rescale(eps, guidance, rescale);
    if (st.preview.defined()) ops::denoised(st.x, eps, st.denoised, st.step, guidance, st.preview);
    ops::sampler_step(st.x, st.state, eps, st.coefs, st.noise, st.step, guidance);
    if (st.renoise.defined())
      ops::inpaint_blend(st.x, st.inpaint_mask, st.inpaint_x0, st.inpaint_noise, st.renoise, st.step);
  };
  // A new loop runs its first step eagerly: every library's first use (cuDNN heuristics and plan
  // finalize, cuBLASLt's algorithm choice, lazy module loading, the pool's first allocation of each
  // size) happens outside any stream capture, where some of them are not permitted. Only then is
  // the step recorded, from the warm caches, and replayed for the other steps. Without graphs
  // nothing is ever captured. A reused graph replays every step.
  int first = 0;
  PendingPreview pending_preview;
  if (on_step) on_step(0, units);
  if (!reuse) {
    trace::phase("unet_warmup");
    denoise_step();
    if (p.record_unit_latents) out.unit_latents.push_back(to_nchw(st.x));
    if (preview && p.preview_every == 1 && units > 1) pending_preview = start_preview(p, st.preview, 1, units);
    first = 1;
    if (on_step) on_step(1, units);
    if (p.cuda_graphs && units > 1) {
      trace::phase("step_recording");
      // Recording runs nothing: the step's buffers are taken (from the pool's cache, warm now) and
      // stay with the graph for its replays. Backends without graphs return none.
      st.graph = backend.capture(denoise_step);
      if (st.graph) ++step_graphs_recorded_;
    }
  }
  out.step_graph_reused = reuse;
  for (int i = first; i < units; ++i) {
    trace::phase("unet_step", i);
    if (st.graph)
      st.graph->launch();
    else
      denoise_step();
    show_preview(p, pending_preview);  // the previous unit's, while this one runs
    if (p.record_unit_latents) out.unit_latents.push_back(to_nchw(st.x));
    if (preview && (i + 1) % p.preview_every == 0 && i + 1 < units)
      pending_preview = start_preview(p, st.preview, i + 1, units);
    if (on_step) on_step(i + 1, units);
  }
  show_preview(p, pending_preview);
  trace::phase("vae_decode");
  const Tensor latents = st.x;
  out.latents = to_nchw(latents);  // the one download of the latents; waits for the last step
  out.times.unet_s = seconds_since(t0);
  if (!p.keep_step_graph) loop_.reset();  // the graph's buffers back to the pool's cache
  // The decoder's buffers differ in size from the UNet's: hand the cached ones back first, so the
  // two working sets add up in the peak only by what a kept graph holds.
  backend.release_cached_memory();

  t0 = Clock::now();
  if (p.decode)
    decode_images(p, latents, B, out);
  else
    out.not_finite.assign(B, std::string());
  out.times.vae_s = seconds_since(t0);
  trace::phase("");
  out.times.total_s = seconds_since(t_start);
  out.peak_device_bytes = backend_for(device_).peak_memory_bytes();
  return out;
}

}  // namespace sdgen
