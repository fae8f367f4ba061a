// What the user asked for: the run-wide options (model, device, precision, output) and one Job per
// prompt (from --prompt or each line of --prompt-file, whose JSON lines may override the per-job
// options). Validation lives here so that every bad value gets one line naming the option (and the
// prompt-file line) before any model is loaded.
#pragma once
#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/job.h"
#include "sdgen/config.h"

namespace sdgen::cli {

// The run-wide options (the command line only, cli/run.cpp declares them) and the jobs.
struct RunOptions {
  std::string prompt_file;    // --prompt-file
  bool json = false;          // --json
  bool quiet = false;         // -q
  bool cuda_graphs = true;    // --cuda-graphs on|off
  std::string manifest_path;  // --manifest
  bool skip_existing = false; // --skip-existing
  std::string shard_text;     // --shard K/N as given (empty: the whole set)
  std::string from_png;       // --from-png FILE (its settings are the jobs' defaults)
  bool grid = false;          // --grid: a contact sheet of each job's images
  std::string preview;        // --preview FILE: the live preview (cli/preview.h)
  int preview_every = 0;      // --preview-every N (0: not given; 1 with --preview)
  uint64_t max_memory = 0;    // --max-memory (0: what the device has)
  std::vector<Job> jobs;
};

// --device cpu|cuda|cuda:N|auto as a Device: cuda throws the runtime error (exit 5) naming why it
// cannot start; cuda:N first selects GPU N (one per process); auto is the GPU when this build has the
// CUDA backend and a device answers, else the CPU.
// `why_cpu`: where "auto" falls back to the CPU in a build with the CUDA backend, why the GPU could
// not be used (the plugin's missing library, no device, ...); left empty otherwise.
Device pick_device(const DeviceSpec& device, std::string* why_cpu = nullptr);
// N of "cuda:N", -1 for any other text.
int cuda_ordinal(const std::string& device);
// Everything about a job that can be checked before a model loads: its settings (cli/settings.h),
// the files it names, its prompts' emphasis and its file names. Throws Error(kUsage), or
// Error(kModel) for a missing file, with "<origin>: <option> ...: why".
void validate_job(const Job& job);
// validate_job, then, for a job that leaves --width/--height unset (Job::width_given), those take
// model_side(), called only then (default_side of the job's model: SDXL's 1024, else 512, as
// diffusers' default sample sizes for SD v1.5 and SDXL base).
void validate_job_for_model(Job& job, const std::function<int()>& model_side);
int default_side(const std::string& model_path);
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
