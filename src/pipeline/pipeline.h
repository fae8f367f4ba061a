// Text to image (and img2img, from a picture's latents; pipeline/img2img.cpp): tokenizer → CLIP, 77 tokens per chunk (negative/empty prompt and prompt) → initial noise (torch CPU
// randn, NCHW order, so a seed gives diffusers' images) → sampler steps with classifier-free guidance
// as one UNet call on a batch of 2B (uncond first) → VAE decode → uint8 RGB.
// Models are loaded once per Pipeline and reused for every generate() call.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/image_read.h"
#include "pipeline/hires.h"
#include "pipeline/model_options.h"
#include "sdgen/config.h"
#include "sampler/sampler.h"
#include "sdgen/tensor.h"
#include "text/conditioning.h"
#include "text/tokenizer.h"

namespace sdgen {

class Checkpoint;
class Download;
class ClipTokenizer;
class ClipTextEncoder;
class UNet;
class VaeDecoder;
class VaeEncoder;
class TaesdDecoder;
class TaesdEncoder;
class ControlNet;

// One ControlNet of a generation (diffusers' StableDiffusionControlNetPipeline; several are summed as
// its MultiControlNetModel).
struct ControlParams {
  std::string model;  // the ControlNet file or folder (io/controlnet_file.h)
  // The control image, used as given (already an edge map, depth map, pose, ...): resized to the
  // generation's size with Lanczos when it differs, as diffusers' control image processor does.
  std::shared_ptr<const RgbImage> image;
  float scale = 1.0f;  // controlnet_conditioning_scale
};

// SDXL's micro-conditioning: the six size ids of each row, in diffusers' order (original height,
// width; crop top, left; target height, width). Sizes 0 mean the generation's height and width, as
// diffusers' defaults. The negative rows take the positive ids unless negative_own, as diffusers
// takes its negative_* arguments (given, their unset sizes are the generation's, the crop 0, 0).
struct SizeConditioning {
  int original_h = 0, original_w = 0, crop_top = 0, crop_left = 0, target_h = 0, target_w = 0;
  bool negative_own = false;
  int neg_original_h = 0, neg_original_w = 0, neg_crop_top = 0, neg_crop_left = 0, neg_target_h = 0, neg_target_w = 0;
  std::vector<float> time_ids(int width, int height, bool negative) const;
};

struct GenerateParams {
  std::string prompt;
  // Several prompts in one batch, as diffusers takes a list: images are prompt-major (batch images of
  // prompts[0], then of prompts[1], ...) and their noise is one draw for the whole batch. Empty: just
  // `prompt`.
  std::vector<std::string> prompts;
  std::string negative_prompt;
  // SDXL: the second text encoder's texts (diffusers' prompt_2 and negative_prompt_2, one for every
  // prompt of the batch); empty: it reads the prompt / the negative prompt. The negative rows are
  // zeros only where both negative texts are empty (force_zeros_for_empty_prompt). A model with one
  // text encoder refuses them.
  std::string prompt_2, negative_prompt_2;
  int batch = 1;  // images per prompt
  int steps = 25;
  float guidance = 7.5f;
  // diffusers' guidance_rescale φ in [0, 1] (ops::guidance_rescale): the guided output pulled toward
  // the conditional output's standard deviation, against over-exposure with v-prediction and
  // zero-terminal-SNR models; 0: off. Only with guidance (> 1), as diffusers.
  float guidance_rescale = 0.0f;
  uint64_t seed = 0;
  int width = 512;
  int height = 512;
  SamplerOptions sampler;  // sampler.h: the sampler, its sigma schedule and DDIM's η
  // SDXL's size conditioning (diffusers' original_size, crops_coords_top_left, target_size and
  // their negative_* twins); ignored by other models.
  SizeConditioning size_cond;
  // A1111's "Clip skip" (ClipTextEncoder::forward): 1 the last layer, 2 the one before, ... Applied
  // to the prompts; the negative prompt keeps the last layer, as diffusers' clip_skip does.
  int clip_skip = 1;
  // How prompts are cleaned before tokenizing: as transformers 4 with ftfy and A1111 (Ftfy), or as
  // transformers 5 and current diffusers (Basic) (text/tokenizer.h).
  TextCleanup text_cleanup = TextCleanup::Ftfy;
  // What the UNet predicts, overriding the model's scheduler config: "epsilon" or "v_prediction"
  // (SD 2.x 768-v single files say nothing of it); empty: as the config says (epsilon when silent).
  std::string prediction_type;
  // Noise source and seeding (core/rng.h): torch-cpu draws as torch.randn with a CPU generator
  // (diffusers' default), philox as torch.randn on a CUDA generator (A1111's "NV"), on any backend.
  // Batch: the whole batch is one draw of one generator seeded `seed` (diffusers); PerImage: image i
  // has its own generator seeded seed+i (A1111), so it can be regenerated alone with that seed.
  RngKind rng = RngKind::TorchCpu;
  SeedMode seed_mode = SeedMode::Batch;
  // A1111's emphasis syntax and BREAK (text/prompt_weights.h); off: the prompts are literal text.
  // Prompts longer than 75 tokens are chunked either way (text/conditioning.h).
  bool emphasis = true;
  bool cuda_graphs = true;  // on CUDA: record the denoising step once and replay it
  // Images per VAE pass (0: one). Its activations dominate the memory peak (at 512², fp16, about
  // 730 MiB per image on CUDA), so one per pass keeps it lowest; the 8-bit images of all passes
  // land in one tensor, downloaded once.
  int vae_batch = 0;
  // Keep the recorded step (and the buffers it writes) after this call, for the next call with the
  // same shapes and settings to replay. Off: its buffers go back before the VAE decodes, which
  // keeps the VAE's working set from adding to the UNet's (the lower peak of a single generation).
  bool keep_step_graph = true;
  // The non-finite guard (GeneratedBatch::not_finite, the fp32 retry of an fp16 decode). Off only
  // where no values are computed (the emulator's dry census run).
  bool check_finite = true;
  // Tests: download the latents after every unit (UNet evaluation) into unit_latents.
  bool record_unit_latents = false;
  // img2img (diffusers' StableDiffusionImg2ImgPipeline): the picture to start from, width × height
  // 8-bit RGB, encoded by the VAE and noised to the step where `strength` starts: the first
  // steps − int(steps·strength) steps of the schedule are skipped (strength 1 runs them all, from
  // the picture's latents fully noised). Null: text to image.
  std::shared_ptr<const RgbImage> init_image;
  double strength = 0.75;
  // Inpainting (with init_image; diffusers' StableDiffusionInpaintPipeline with a regular 4-channel
  // model): the mask at the picture's size, white (≥ 128 after the grey conversion) repainted,
  // black kept: after every step the kept region goes back to the picture's latents renoised to the
  // step's level. Null: img2img.
  std::shared_ptr<const RgbImage> mask;
  // Inpainting options (pipeline/inpaint_area.h): the mask blurred first by PIL's GaussianBlur of
  // this radius (0: none); with inpaint_masked, only the mask's box plus inpaint_padding pixels is
  // generated at width × height and pasted back: init_image and mask then keep their own size, and
  // so do the images.
  int mask_blur = 0;
  bool inpaint_masked = false;
  int inpaint_padding = 32;
  // A1111's "Masked content: latent noise": the picture's latents replaced by fresh noise where
  // the mask repaints, before they are noised (pipeline/img2img.cpp, fill_with_latent_noise).
  bool inpaint_latent_noise = false;
  // The hires fix (pipeline/hires.h): enabled, generate() runs this text-to-image generation, the
  // upscale and the second pass, and returns the second pass's images and latents.
  HiresParams hires;
  // The hires pass's start, set by the hires fix (pipeline/hires.cpp) and read as init_image is (with
  // `strength`): the clean latents, NCHW [B, 4, h, w] (latent upscalers), or one picture per image,
  // width × height (lanczos).
  std::shared_ptr<const std::vector<float>> init_latents;
  std::shared_ptr<const std::vector<RgbImage>> init_pictures;
  bool decode = true;  // off: no images (a latent-upscaled hires pass's first pass)
  // Live previews: after every `preview_every` units (not the last), `preview` gets the unit's
  // denoised estimate (SamplerPlan::denoised), NCHW [images, 4, h, w] host floats. The estimate is one
  // more kernel in the recorded step; the download happens only after a preview's unit. Off
  // (preview_every 0 or no callback): the step is what it is without previews.
  int preview_every = 0;
  std::function<void(int done, int units, const std::vector<float>& x0, int images, int h, int w)> preview;
  // With the tiny autoencoder loaded (--vae-tiny) and this set, it gets the estimate decoded by
  // TAESD instead (one picture per image, the generation's size), and `preview` is not called.
  std::function<void(int done, int units, const std::vector<RgbImage>& pictures)> preview_pictures;
  // ControlNets (pipeline/control.cpp): their residuals are added to the UNet's in every unit u with
  // control_start <= u/units and (u+1)/units <= control_end (diffusers' control_guidance_start/end;
  // diffusers refuses start == end, which here guides no unit, as A1111 allows).
  // Guess mode: the ControlNets see the conditional rows only and their residuals are scaled from
  // 0.1 (the first skip) to 1 (the mid block), as diffusers' guess_mode.
  std::vector<ControlParams> controls;
  double control_start = 0.0, control_end = 1.0;
  bool guess_mode = false;
};

struct StageTimes {
  double text_s = 0, unet_s = 0, vae_s = 0, total_s = 0;
};

struct GeneratedBatch {
  int width = 0, height = 0;
  std::vector<std::vector<uint8_t>> images;  // batch × (height·width·3), RGB
  std::vector<float> latents;                // final latents, NCHW [B,4,h,w] like diffusers
  std::vector<std::vector<float>> unit_latents;  // with record_unit_latents: after each unit, NCHW
  std::vector<float> start_latents;  // with record_unit_latents: the initial latents, NCHW
  std::vector<uint64_t> seeds;               // each image's seed (LatentNoise::image_seed)
  // Per image: empty, or what was not finite (NaN/Inf) — "the final latents", or "the decoded
  // image" (in fp16 after the one retry of its decode in fp32). Such an image must not be written.
  std::vector<std::string> not_finite;
  StageTimes times;
  size_t peak_device_bytes = 0;  // Backend::peak_memory_bytes after the run (0: not a device)
  bool step_graph_reused = false;  // the denoising step replayed a graph recorded by an earlier call
};

class Pipeline {
 public:
  using StepCallback = std::function<void(int done, int total)>;
  using LogCallback = std::function<void(const std::string&)>;

  // before_weights: called with the model's config once the checkpoint is open, before any
  // weight loads (sd-gen's up-front memory check, pipeline/memory_estimate.h, throws from it).
  Pipeline(const std::string& model_path, DType precision, Device device, LogCallback log = nullptr,
           const ModelOptions& options = {},
           const std::function<void(const ModelConfig&)>& before_weights = nullptr);
  ~Pipeline();
  const Checkpoint& checkpoint() const { return *checkpoint_; }
  // The model's scheduler config with the generation's overrides (GenerateParams::prediction_type).
  SchedulerConfig scheduler_config(const GenerateParams& p) const;
  std::string model_name() const;
  // The --vae file or folder name; empty when the checkpoint's own VAE decodes.
  const std::string& vae_name() const { return vae_name_; }
  // The --vae-tiny file or folder name; empty when the full VAE decoder decodes.
  const std::string& taesd_name() const { return taesd_name_; }
  DType precision() const { return precision_; }
  Device device() const { return device_; }
  // The VAE encoder: loaded when ModelOptions::need_encoder was set or an img2img generation needed
  // it; nullptr otherwise.
  const VaeEncoder* vae_encoder() const { return vae_encoder_.get(); }

  GeneratedBatch generate(const GenerateParams& p, const StepCallback& on_step = nullptr);

  // Stages, public for tests and benchmarks.
  const ClipTokenizer& tokenizer() const { return *tokenizer_; }
  const ClipTextEncoder& text_encoder() const { return *clip_; }
  // SDXL's second tokenizer and text encoder; nullptr for other models.
  const ClipTokenizer* tokenizer2() const { return tokenizer2_.get(); }
  const ClipTextEncoder* text_encoder2() const { return clip2_.get(); }
  // Initial latents for a batch: torch.randn((B,4,h,w), Generator("cpu").manual_seed(seed)), NCHW
  // (rng torch-cpu, seed mode batch); the other sources and modes: the second form, which is the
  // first draw of LatentNoise(rng, mode, seed, batch) and what generate() starts from.
  static std::vector<float> initial_noise(uint64_t seed, int batch, int latent_h, int latent_w);
  static std::vector<float> initial_noise(RngKind rng, SeedMode mode, uint64_t seed, int batch, int latent_h,
                                          int latent_w);
  // NCHW host floats -> NHWC fp32 tensor on the pipeline's device (the sampler's latents), and back.
  Tensor to_device_f32(const std::vector<float>& nchw, int n, int c, int h, int w) const;
  static Tensor to_nhwc_host(const std::vector<float>& nchw, int n, int c, int h, int w);
  static std::vector<float> to_nchw(const Tensor& nhwc);
  // How many times a denoising step has been recorded as a graph (tests: a second generate() with
  // the same shapes and settings records none).
  int step_graphs_recorded() const { return step_graphs_recorded_; }

 private:
  // The denoising loop's device state and its recorded step, kept between generate() calls: the
  // graph reads these buffers by address, so a call with the same key refills them in place
  // (noise, context, step index) and replays the same graph.
  struct StepGraphKey {
    int images, rows, latent_h, latent_w, context_len, steps, begin;
    bool inpaint, preview;
    std::vector<const ControlNet*> controls;  // the step runs these (their weights are in the graph)
    bool guess_mode;
    float guidance, guidance_rescale;
    SamplerOptions sampler;  // the step's ops and the shape of its tables (refilled on a replay)
    bool operator==(const StepGraphKey& o) const {
      return images == o.images && rows == o.rows && latent_h == o.latent_h && latent_w == o.latent_w &&
             context_len == o.context_len && steps == o.steps && begin == o.begin && inpaint == o.inpaint &&
             preview == o.preview && controls == o.controls && guess_mode == o.guess_mode &&
             guidance == o.guidance && guidance_rescale == o.guidance_rescale &&
             sampler == o.sampler;
    }
  };
  struct LoopState;
  std::unique_ptr<LoopState> loop_;

  // The text context of a generation on the model's device, [rows, tokens, D] in its dtype: the
  // negative prompts' rows first when `guided`, each prompt's row repeated per image.
  // SDXL adds each row's pooled text embedding (host fp32 [rows, width]) and size ids (rows × 6).
  struct TextContext {
    Tensor context;
    int rows = 0;
    int64_t tokens = 0;
    Tensor pooled;
    std::vector<float> time_ids;
  };
  TextContext encode_context(const GenerateParams& p, const std::vector<std::string>& positive, bool guided);
  // SDXL: `first` (the first encoder's, of `prompts`) joined with the second encoder's context and
  // pooled output of `prompts2`;
  // the first `negatives` rows zeroed where the model asks for zeros for an empty negative prompt.
  Conditioning encode_second(const GenerateParams& p, const std::vector<std::string>& prompts,
                             const std::vector<std::string>& prompts2, ConditioningOptions copt, Conditioning first,
                             int negatives);
  // img2img's initial latents, NCHW [B, 4, h, w] host floats (pipeline/img2img.cpp): the picture
  // encoded, its latent distribution sampled with the generator(s), scaled, repeated per image and
  // noised by the plan's add_noise mix.
  // Inpainting adds the picture's latents, the start's noise and the latent mask (NHWC [B,h,w,C]
  // host fp32 each) for ops::inpaint_blend.
  // A 9-channel inpainting model instead gets the UNet's extra input channels (NHWC [B,h,w,5] host
  // fp32: the latent mask, the masked picture's latents) and no blend.
  struct Start {
    std::vector<float> x;  // the initial latents, NCHW
    Tensor x0, noise, mask;  // inpainting with a regular model only
    Tensor cond;             // inpainting with a 9-channel model only
  };
  Start init_latents(const GenerateParams& p, const SamplerPlan& plan, LatentNoise& noise, int B);
  std::vector<float> encode_sampled(const std::vector<float>& pixels, int width, int height, LatentNoise& noise,
                                    int B);
  std::vector<float> taesd_latents(const std::vector<float>& pixels, int width, int height);
  // The hires fix (pipeline/hires.cpp): both passes; and the second pass's initial latents from
  // init_latents or init_pictures.
  GeneratedBatch generate_hires(const GenerateParams& p, const StepCallback& on_step);
  std::vector<float> hires_start(const GenerateParams& p, const SamplerPlan& plan, LatentNoise& noise, int B);
  std::vector<float> vae_sampled(const std::vector<std::vector<float>>& pictures, int width, int height,
                                 LatentNoise& noise);
  // A live preview: started after its unit (the estimate, or TAESD's pictures of it, copied to the
  // host without waiting), shown once the next unit is queued (pipeline.cpp).
  struct PendingPreview {
    std::unique_ptr<Download> copy;
    bool pictures = false;
    int done = 0, units = 0;
  };
  PendingPreview start_preview(const GenerateParams& p, const Tensor& x0, int done, int units);
  void show_preview(const GenerateParams& p, PendingPreview& pending);
  // ControlNets (pipeline/control.cpp): the one of a path, loaded on first use; the generation's
  // control state (hint embeddings, contexts, the units' scales) set into the loop, fresh or refilled;
  // and the step's residuals.
  const ControlNet& controlnet(const std::string& path);
  std::vector<const ControlNet*> control_nets(const GenerateParams& p);
  void set_control(const GenerateParams& p, const SamplerPlan& plan, const TextContext& text, bool guided, bool refill);
  bool control_cond_only(bool guided) const;
  std::map<std::string, std::unique_ptr<ControlNet>> controlnets_;
  // The images of `latents` (B of them, on the device) into out.images, out.not_finite.
  void decode_images(const GenerateParams& p, const Tensor& latents, int B, GeneratedBatch& out);
  int step_graphs_recorded_ = 0;

  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<ClipTokenizer> tokenizer_;
  std::unique_ptr<ClipTextEncoder> clip_;
  std::unique_ptr<ClipTokenizer> tokenizer2_;  // SDXL's second tokenizer and text encoder
  std::unique_ptr<ClipTextEncoder> clip2_;
  std::unique_ptr<UNet> unet_;
  std::unique_ptr<VaeDecoder> vae_;
  std::unique_ptr<VaeDecoder> vae_fp32_;  // fp16 pipelines: loaded on the first non-finite decode
  VaeConfig vae_config_;                  // the checkpoint's, or --vae's
  DType vae_dtype_ = DType::F32;          // the precision, or fp32 where the VAE's config forces it
  // --vae-tiny's decoder, which then replaces vae_ (not loaded), and its fp32 twin for the retry.
  std::unique_ptr<TaesdDecoder> taesd_, taesd_fp32_;
  // --vae-tiny's encoder, when its file has one: pictures in are encoded with it (img2img.cpp).
  bool taesd_has_encoder_ = false;
  std::unique_ptr<TaesdEncoder> taesd_encoder_;
  std::unique_ptr<Checkpoint> taesd_weights_;
  TaesdConfig taesd_config_;
  std::string taesd_name_;
  void load_taesd(const std::string& path);
  // latents through the tiny decoder when there is one, else the full one; in the pipeline's
  // precision or (the non-finite retry) another dtype, whose decoder is loaded on first use.
  Tensor decode_latents(const Tensor& latents, DType dtype);
  // ModelOptions::need_encoder's; otherwise loaded by the first img2img generation (pipeline/img2img.cpp).
  std::unique_ptr<VaeEncoder> vae_encoder_;
  std::unique_ptr<Checkpoint> vae_weights_;  // --vae's (the decoder holds copies; kept for diagnostics)
  std::string vae_name_;
  DType precision_;
  Device device_;
  LogCallback log_;
};

}  // namespace sdgen
