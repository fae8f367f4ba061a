// What one prompt asks for, as typed values: the settings table (cli/settings.h) turns the command
// line's text and a prompt file's JSON into these fields, and checks them, before anything runs.
// Past that boundary no setting is a string that still has to be compared or parsed.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/image_resize.h"
#include "io/lora_spec.h"
#include "pipeline/hires.h"
#include "sampler/sampler.h"
#include "sdgen/tensor.h"
#include "text/embedding_spec.h"
#include "text/tokenizer.h"

namespace sdgen::cli {

// --device auto|cpu|cuda|cuda:N.
struct DeviceSpec {
  enum Kind { Auto, Cpu, Cuda } kind = Auto;
  int ordinal = -1;  // N of cuda:N; -1: the CUDA backend's default device
  // As written: "auto", "cpu", "cuda", "cuda:1".
  std::string text() const;
  bool operator==(const DeviceSpec& o) const { return kind == o.kind && ordinal == o.ordinal; }
};

// A "FILE[:SCALE]" (--lora) or "FILE[:TOKEN]" (--embedding) as given, with what it names. The text
// is kept for the manifest's job identity, which records the specs as written.
struct LoraArg {
  std::string spec;
  LoraSpec lora;
};
struct EmbeddingArg {
  std::string spec;
  std::string file, token;  // token empty: the file's name
};

// A "FILE[:SCALE]" of --control as given, with what it names.
struct ControlArg {
  std::string spec;
  std::string file;
  float scale = 1.0f;
};

// --control-preprocess: what is done to the control images before the ControlNet reads them.
enum class ControlPreprocess { None, Canny };

struct Job {
  std::string prompt;  // as given, <lora:...> tags included
  std::string negative_prompt;
  // SDXL's second text encoder's own texts (diffusers' prompt_2, negative_prompt_2); empty: it reads
  // the prompt / the negative prompt.
  std::string prompt_2, negative_prompt_2;
  int batch = 1;
  int steps = 25;
  float guidance = 7.5f;
  float guidance_rescale = 0.0f;  // --guidance-rescale (diffusers' guidance_rescale φ; 0: off)
  std::optional<uint64_t> seed;  // random when absent, then printed
  int width = 512;
  int height = 512;
  // Whether --width / --height (or a prompt-file line, or a PNG's Size) gave them; where not, the
  // model's default side replaces 512 before the job is checked (validate_job_for_model in
  // cli/options.h: SDXL's 1024).
  bool width_given = false, height_given = false;
  // SDXL's size conditioning (pipeline.h, SizeConditioning): --original-size, --crop-coords,
  // --target-size and their --negative-* twins as {a, b}: sizes {width, height}, crops {top, left};
  // unset: {-1, -1}.
  std::array<int, 2> original_size{-1, -1}, crop_coords{-1, -1}, target_size{-1, -1};
  std::array<int, 2> negative_original_size{-1, -1}, negative_crop_coords{-1, -1}, negative_target_size{-1, -1};
  std::string init_image;  // --init-image (empty: text to image)
  double strength = 0.75;  // --strength: img2img's share of the schedule (double, as Python's)
  ResizeMode resize_mode = ResizeMode::Just;
  std::string mask;  // --mask: inpainting (with init_image)
  int mask_blur = 0;             // --mask-blur: PIL's GaussianBlur radius on the mask (0: none)
  bool inpaint_masked = false;   // --inpaint-area masked: only the mask's box, pasted back
  int inpaint_padding = 32;      // --inpaint-padding: pixels around the mask's box
  bool inpaint_latent_noise = false;  // --inpaint-fill latent-noise (A1111's Masked content)
  // The hires fix (pipeline/hires.h): --hires-scale, or --hires-width/--hires-height (0: unset);
  // none of them: no hires pass.
  double hires_scale = 0;
  int hires_width = 0, hires_height = 0;
  int hires_steps = 0;         // 0: --steps
  double hires_denoise = 0.7;  // the second pass's strength (A1111's default denoising strength)
  HiresUpscaler hires_upscaler = HiresUpscaler::Latent;
  SamplerOptions sampler;  // --sampler, --schedule, --eta
  RngKind rng = RngKind::TorchCpu;
  SeedMode seed_mode = SeedMode::Batch;
  bool emphasis = true;  // --no-emphasis, or "emphasis": false in a prompt file
  bool ema = false;      // --ema: a single file's UNet from its model_ema.* copies
  int clip_skip = 1;     // --clip-skip N (A1111's; diffusers' clip_skip = N - 1)
  TextCleanup text_cleanup = TextCleanup::Ftfy;  // --text-cleanup ftfy|basic
  std::string prediction_type;  // --prediction-type epsilon|v_prediction (empty: the model's config)
  int vae_batch = 1;     // --vae-batch N: images per VAE decode pass
  std::string vae;       // --vae FILE|FOLDER (empty: the checkpoint's)
  std::string vae_tiny;  // --vae-tiny FILE|FOLDER: TAESD decodes (empty: the full VAE)
  std::vector<EmbeddingArg> embeddings;
  std::vector<LoraArg> loras;  // --lora, in order
  // ControlNets (pipeline.h, ControlParams): --control FILE[:SCALE] and --control-image IMG, paired in
  // order; the guidance window (diffusers' control_guidance_start/end), guess mode, the preprocessing.
  std::vector<ControlArg> controls;
  std::vector<std::string> control_images;
  double control_start = 0.0, control_end = 1.0;
  bool guess_mode = false;
  ControlPreprocess control_preprocess = ControlPreprocess::None;
  int canny_low = 100, canny_high = 200;
  std::string lora_dir;        // --lora-dir: where <lora:NAME> finds NAME.safetensors
  std::string model;           // file or diffusers folder (empty: $SDGEN_MODEL, then weights/)
  DType precision = DType::F32;
  DeviceSpec device;
  std::string out_dir = "outputs";
  std::string name_pattern = "{n}-{seed}-{i}";
  std::string origin;  // "--prompt" or "prompts.txt:12", for messages

  // Filled by finish_job (cli/settings.h) once every setting is in: the prompt's <lora:NAME:SCALE>
  // tags as specs, and the prompt without them, which the text encoder reads.
  std::vector<LoraSpec> prompt_loras;
  std::string text_prompt;
};

// Every LoRA the job applies: --lora's in order, then the prompt's tags.
std::vector<LoraSpec> job_loras(const Job& job);
// The job's hires pass (HiresParams::enabled() false without one): the size from --hires-scale as
// A1111's int(side·scale), or from --hires-width/--hires-height, one of them alone keeping the
// aspect ratio (A1111's other·side // side).
HiresParams job_hires(const Job& job);

}  // namespace sdgen::cli
