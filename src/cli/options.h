// What the user asked for: the run-wide options (model, device, precision, output) and one Job per
// prompt (from --prompt or each line of --prompt-file, whose JSON lines may override the per-job
// options). Validation lives here so that every bad value gets one line naming the option (and the
// prompt-file line) before any model is loaded.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/lora.h"
#include "sdgen/config.h"
#include "sdgen/tensor.h"

namespace sdgen::cli {

struct Job {
  std::string prompt;
  std::string negative_prompt;
  int batch = 1;
  int steps = 25;
  float guidance = 7.5f;
  std::optional<uint64_t> seed;  // random when absent, then printed
  int width = 512;
  int height = 512;
  std::string sampler = "ddim";
  std::string schedule = "default";  // --schedule default|karras
  float eta = 0.0f;                  // --eta (ddim)
  std::string rng = "torch-cpu";  // --rng torch-cpu|philox (core/rng.h)
  std::string seed_mode = "batch";  // --seed-mode batch|per-image
  bool emphasis = true;          // --no-emphasis, or "emphasis": false in a prompt file
  bool ema = false;              // --ema: a single file's UNet from its model_ema.* copies
  int clip_skip = 1;             // --clip-skip N (A1111's; diffusers' clip_skip = N - 1)
  std::string vae;               // --vae FILE|FOLDER (empty: the checkpoint's)
  std::vector<std::string> embeddings;  // --embedding FILE[:TOKEN], repeatable
  std::vector<std::string> loras;       // --lora FILE[:SCALE], repeatable (and <lora:NAME:SCALE> in the prompt)
  std::string lora_dir;                 // --lora-dir: where <lora:NAME> finds NAME.safetensors
  std::string model;             // file or diffusers folder (empty: $SDGEN_MODEL, then weights/)
  std::string precision = "fp32";
  std::string device = "auto";
  std::string out_dir = "outputs";
  std::string name_pattern = "{n}-{seed}-{i}";
  std::string origin;            // "--prompt" or "prompts.txt:12", for messages
};

struct RunOptions {
  bool json = false;
  bool quiet = false;
  bool cuda_graphs = true;  // --cuda-graphs on|off
  std::vector<Job> jobs;
};

// --device cpu|cuda|cuda:N|auto as a Device: cuda throws the runtime error (exit 5) naming why it
// cannot start; cuda:N first selects GPU N (one per process); auto is the GPU when this build has the
// CUDA backend and a device answers, else the CPU.
// `why_cpu`: where "auto" falls back to the CPU in a build with the CUDA backend, why the GPU could
// not be used (the plugin's missing library, no device, ...); left empty otherwise.
Device pick_device(const std::string& device, std::string* why_cpu = nullptr);
// N of "cuda:N", -1 for any other text.
int cuda_ordinal(const std::string& device);
// Throws Error(kUsage) with "<origin>: <option> ...: why".
void validate_job(const Job& job);
// Parses a prompt file: plain lines (one prompt each; blank lines and lines starting with '#'
// skipped) or JSON Lines ({"prompt": ..., optional per-job overrides}); `defaults` gives the rest.
std::vector<Job> read_prompt_file(const std::string& path, const Job& defaults);
// --model, else $SDGEN_MODEL, else a downloaded SD v1.5 file in weights/. Throws Error(kModel).
std::string resolve_model_path(const std::string& model_option);
// Expands {n} (image number, 5 digits), {seed} (the image's own seed), {i} (index in the batch), {prompt} (a short slug),
// {steps}, {w}, {h} in a file-name pattern; ".png" is appended when missing.
std::string expand_name(const std::string& pattern, int n, uint64_t seed, int i, const Job& job);
// Makes the output folder (with parents) and checks that a file can be created in it. Returns the
// folders it created, outermost first, so that a run that fails later can remove them again.
std::vector<std::string> prepare_output_dir(const std::string& dir);
// Removes the folders prepare_output_dir created, innermost first, where they are still empty.
void remove_created_dirs(const std::vector<std::string>& created);
// The job's LoRAs: --lora's, then the prompt's <lora:NAME:SCALE> tags (in --lora-dir); *prompt
// (when given) gets the prompt without the tags, what the text encoder sees.
std::vector<LoraSpec> job_loras(const Job& job, std::string* prompt = nullptr);
// Job::rng / Job::seed_mode as the pipeline's enums (validate_job has checked them).
RngKind job_rng(const Job& job);
SeedMode job_seed_mode(const Job& job);
// The up-front memory check (pipeline/memory_estimate.h), shared by generation and bench so that
// both refuse a size or batch that cannot fit before a weight loads, with the same words.
// The limit: what `device` has free, or --max-memory (`max_memory`, 0: none) when that is lower.
struct MemoryLimit {
  uint64_t bytes = 0;
  bool capped = false;  // --max-memory is the limit
  std::string source;   // where the free figure came from (Backend::Available::source)
};
MemoryLimit memory_limit(Device device, uint64_t max_memory);
// One pipeline call of `batch` images of `job`'s size, steps and guidance in `precision` on
// `device` (the recorded step kept through the VAE decode when `keep_step_graph`). Empty when its
// estimate fits `limit`; else the refusal, without a prompt-file line: "2048x2048, batch 64, fp32
// on cpu needs about ..., more than the 2.0 GiB of --max-memory; use a smaller --batch or size, ...".
std::string memory_refusal(const ModelConfig& cfg, const MemoryLimit& limit, const Job& job, int batch,
                           DType precision, Device device, bool keep_step_graph);

// The PNG "parameters" text (A1111's infotext form) of image `index` of a job, whose own seed is
// `image_seed`: "Seed: N" is that seed; "RNG: CPU" (torch-cpu) or "RNG: NV" (philox) as A1111
// names its sources; "Seed mode: batch|per-image"; "Clip skip: N" when N > 1; "VAE: <file name>"
// with --vae; 'Lora hashes: "name: hash, ..."' and 'TI hashes: "token: hash, ..."' (io/model_hashes.h)
// for the LoRAs applied and the embeddings the prompts use.
std::string parameters_text(const Job& job, uint64_t image_seed, int index, const std::string& model);

}  // namespace sdgen::cli
