// sd-gen: the command line. Parse → validate every job → check model and output folder → load the
// models once → generate each job → write PNGs (atomically) → report (progress on stderr, one JSON
// object per image on stdout with --json). Errors: one line on stderr, exit code by kind (README).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <iostream>
#include <random>

#include "cli/batch.h"
#include "cli/bench.h"
#include "cli/manifest.h"
#include "cli/strict_options.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/interrupt.h"
#include "core/sha256.h"
#include "io/checkpoint.h"
#include "io/png_writer.h"
#include "pipeline/memory_estimate.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

using namespace sdgen;
using namespace sdgen::cli;

namespace {

// Folders this run created; removed again (when still empty) if the run fails.
std::vector<std::string> g_created_dirs;

// Ctrl-C / SIGTERM: finish nothing half-way. The request (core/interrupt.h) is polled between
// sampler steps, weight tensors, VAE blocks and images; images already written are complete files.
// A second signal ends the process at once with 130 (as a stop does), after removing the folders
// this run created if they are still empty; only async-signal-safe calls (rmdir, _exit) on fixed
// buffers filled before any work.
constexpr int kMaxNotedDirs = 64;
char g_noted_dirs[kMaxNotedDirs][4096];
volatile sig_atomic_t g_noted_count = 0;
void note_created_dir(const std::string& d) {
  const int n = g_noted_count;
  if (n >= kMaxNotedDirs || d.size() >= sizeof g_noted_dirs[0]) return;
  std::memcpy(g_noted_dirs[n], d.c_str(), d.size() + 1);
  g_noted_count = n + 1;
}
extern "C" void on_signal(int sig) {
  static volatile sig_atomic_t seen = 0;
  if (seen) {
    for (int i = g_noted_count - 1; i >= 0; --i) rmdir(g_noted_dirs[i]);  // fails unless empty
    _exit((int)ExitCode::kInterrupted);
  }
  seen = 1;
  request_interrupt(sig);
}
void check_interrupted() { throw_if_interrupted("generating"); }

// An error that names its line already (raised for another line than the one being loaded).
struct LineError : Error {
  using Error::Error;
};
// "p.txt:2: " for a prompt-file line; a --prompt run has no line to name.
std::string line_prefix(const Job& j) {
  return j.origin.empty() || j.origin == "--prompt" ? "" : j.origin + ": ";
}
// Errors about a prompt-file line's model, output folder or model files name the line
// ("p.txt:2: --model m: no such file or folder").
template <class F>
auto at_line(const Job& j, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const LineError&) {
    throw;
  } catch (const Error& e) {
    if (line_prefix(j).empty()) throw;
    throw Error(e.code(), line_prefix(j) + e.what());
  }
}

int run(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "bench") return run_bench(argc - 1, argv + 1, check_interrupted);
  CLI::App app{"sd-gen: Stable Diffusion v1.x text-to-image generator", "sd-gen"};
  app.footer("Benchmark: sd-gen bench [options] (see sd-gen bench --help)");
  app.get_formatter()->column_width(34);
  RunOptions opt;
  Job job;
  job.origin = "--prompt";
  std::string prompt_file;
  std::string seed_text, manifest_path, shard_text, max_memory_text;
  bool skip_existing = false;
  app.add_option("-p,--prompt", job.prompt, "Text prompt");
  app.add_option("-n,--negative-prompt", job.negative_prompt, "What the image should not show");
  app.add_option("--prompt-file", prompt_file,
                 "One prompt per line, or JSON Lines with per-line overrides of the options below");
  bool no_emphasis = false;
  app.add_flag("--no-emphasis", no_emphasis,
               "Take the prompts literally: no (emphasis), [de-emphasis], (text:weight) or BREAK");
  app.add_option("-b,--batch", job.batch, "Images per prompt")->capture_default_str()->check(decimal_integer());
  app.add_option("--steps", job.steps, "Sampling steps")->capture_default_str()->check(decimal_integer());
  app.add_option("-g,--guidance", job.guidance, "Classifier-free guidance scale")->capture_default_str()->check(decimal_real());
  auto* seed_opt = app.add_option("-s,--seed", seed_text, "Random seed 0..2^64-1 (random when absent or -1, then printed)");
  app.add_option("-W,--width", job.width, "Image width, a multiple of 64")->capture_default_str()->check(decimal_integer());
  app.add_option("-H,--height", job.height, "Image height, a multiple of 64")->capture_default_str()->check(decimal_integer());
  app.add_option("--sampler", job.sampler, "Sampler: " + sampler_names())->capture_default_str();
  app.add_option("--schedule", job.schedule, "Sigma schedule: default or karras (lms, euler, heun, dpm2, dpmpp_*, unipc)")
      ->capture_default_str();
  app.add_option("--eta", job.eta, "DDIM's eta: 0 deterministic, 1 as DDPM (ddim only)")->capture_default_str()->check(decimal_real());
  app.add_option("--rng", job.rng,
                 "Noise: torch-cpu (torch.randn on a CPU generator, as diffusers) or philox (torch.randn "
                 "on CUDA, A1111's NV), on any device")
      ->capture_default_str();
  app.add_option("--seed-mode", job.seed_mode,
                 "batch: one generator for the whole batch (diffusers); per-image: image i has seed+i (A1111)")
      ->capture_default_str();
  app.add_option("--precision", job.precision, "fp32 or fp16 (mixed: fp16 storage, fp32 accumulation)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp16"}));
  app.add_option("--device", job.device, "auto, cpu, cuda or cuda:N (GPU N)")->capture_default_str();
  app.add_option("--clip-skip", job.clip_skip,
                 "CLIP layers to skip from the end, as A1111's Clip skip (1: none->check(decimal_integer()); diffusers' clip_skip is N-1)")
      ->capture_default_str();
  app.add_option("--vae", job.vae, "VAE replacing the model's: .safetensors file (LDM names) or diffusers vae folder");
  app.add_option("--embedding", job.embeddings,
                 "Textual-inversion embedding FILE[:TOKEN] (.safetensors; token: the file name); repeatable");
  app.add_option("--lora", job.loras, "LoRA FILE[:SCALE] (.safetensors, kohya or diffusers/PEFT), merged at load; repeatable");
  app.add_option("--lora-dir", job.lora_dir, "Folder where a prompt's <lora:NAME:SCALE> finds NAME.safetensors");
  app.add_option("-m,--model", job.model,
                 "Checkpoint: .safetensors file or diffusers folder (default: $SDGEN_MODEL, then weights/)");
  app.add_option("-o,--out", job.out_dir, "Output folder")->capture_default_str();
  app.add_option("--name", job.name_pattern,
                 "File name pattern: {n} number, {seed}, {i} batch index, {prompt}, {steps}, {w}, {h}")
      ->capture_default_str();
  std::string graphs = "on";
  app.add_option("--cuda-graphs", graphs, "on or off: on CUDA, record the denoising step once and replay it")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_flag("--ema", job.ema, "Use a single file's EMA copy of the UNet (model_ema.*) when it has both");
  app.add_flag("--json", opt.json, "Print one JSON object per image on stdout");
  app.add_option("--manifest", manifest_path, "Append one JSON line per finished image to FILE (fsync'ed)");
  app.add_flag("--skip-existing", skip_existing,
               "With --manifest: skip images it records whose files still hold the recorded bytes (resume)");
  app.add_option("--shard", shard_text, "K/N: make part K (0-based) of N of the image set");
  app.add_option("--max-memory", max_memory_text,
                 "SIZE (8G, 512M): refuse work whose estimated memory exceeds it (default: what the device has free)");
  app.add_flag("-q,--quiet", opt.quiet, "Only errors on stderr");
  app.set_version_flag("--version", std::string("sd-gen ") + SDGEN_VERSION);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << "sd-gen " << SDGEN_VERSION << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    throw_usage(std::string(e.what()) + " (see sd-gen --help)");
  }
  if (seed_opt->count()) job.seed = parse_seed_text(seed_text, "--seed");
  const uint64_t max_memory = max_memory_text.empty() ? 0 : parse_byte_size(max_memory_text, "--max-memory");
  job.emphasis = !no_emphasis;
  opt.cuda_graphs = graphs == "on";

  if (!prompt_file.empty()) {
    if (!job.prompt.empty()) throw_usage("give --prompt or --prompt-file, not both");
    opt.jobs = read_prompt_file(prompt_file, job);
  } else {
    if (job.prompt.empty()) throw_usage("no prompt: pass --prompt TEXT or --prompt-file FILE (see sd-gen --help)");
    opt.jobs.push_back(job);
  }
  // Everything that can be checked without loading a model is checked for every job first.
  std::vector<std::string> model_paths;
  for (const Job& j : opt.jobs) {
    validate_job(j);
    model_paths.push_back(at_line(j, [&] { return resolve_model_path(j.model); }));
  }
  check_distinct_names(opt.jobs);
  check_one_gpu(opt.jobs);
  // A planned run (--shard, --skip-existing) fixes every image's name and bytes by its job alone,
  // so that its parts and reruns add up to one run's image set (README "Batch runs").
  const bool planned = !shard_text.empty() || skip_existing;
  if (skip_existing && manifest_path.empty())
    throw_usage("--skip-existing needs --manifest FILE: it skips the images recorded there");
  if (planned)
    for (const Job& j : opt.jobs)
      if (!j.seed)
        throw_usage(j.origin + ": " + (skip_existing ? "--skip-existing" : "--shard") +
                    " needs a fixed seed (--seed S, or \"seed\" on the line): a random one cannot be resumed or split");
  const Shard shard = parse_shard(shard_text.empty() ? "0/1" : shard_text);
  const std::vector<ImageRef> mine = shard_images(opt.jobs, shard);
  const std::map<ImageRef, int> numbers = planned ? planned_numbers(opt.jobs) : std::map<ImageRef, int>();

  Progress progress(opt.quiet);
  auto log = [](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); };
  std::unique_ptr<Manifest> manifest;
  std::map<std::string, std::string> model_sha;  // per model path, hashed once in this run
  auto sha_of = [&](size_t k) -> const std::string& {
    auto it = model_sha.find(model_paths[k]);
    if (it != model_sha.end()) return it->second;
    progress.log("hashing " + model_paths[k] + " (SHA-256, for the manifest)");
    return model_sha[model_paths[k]] = model_sha256(model_paths[k]);
  };
  const std::string shard_spec = std::to_string(shard.k) + "/" + std::to_string(shard.n);
  if (!manifest_path.empty()) manifest = std::make_unique<Manifest>(manifest_path, log);
  // Parts of another split would not add up: Slurm's $SLURM_ARRAY_TASK_COUNT is 1 when one task
  // is resubmitted alone (--array=2), which would turn part 2/4 into 0/1, the whole set.
  if (skip_existing)
    for (const std::string& s : manifest->shards())
      if (s != shard_spec)
        throw_usage("--manifest " + manifest_path + " holds images of --shard " + s + ", this run is --shard " +
                    shard_spec + ": resume each part with the K/N it started with (README \"Batch runs\")");
  std::vector<ImageRef> todo;
  for (const ImageRef& r : mine) {
    const Job& j = opt.jobs[r.job];
    if (skip_existing && manifest->done(job_identity(j, *j.seed, sha_of(r.job)), r.index, j.out_dir)) continue;
    todo.push_back(r);
  }
  if (skip_existing && todo.size() < mine.size())
    progress.log("skipping " + std::to_string(mine.size() - todo.size()) + " of " + std::to_string(mine.size()) +
                 " images: done in " + manifest_path);
  if (shard.n > 1)
    progress.log("shard " + shard_text + ": " + std::to_string(mine.size()) + " images of the run's set");
  const std::vector<Call> calls = plan_calls(opt.jobs, todo, planned);
  if (manifest)  // hashed before the first model load: an unreadable model fails early
    for (const Call& c : calls) sha_of(c.job);
  std::map<std::string, int> next_number;  // per output folder (unplanned runs)
  for (const Call& c : calls) {
    const Job& j = opt.jobs[c.job];
    if (next_number.count(j.out_dir)) continue;
    for (const std::string& d : at_line(j, [&] { return prepare_output_dir(j.out_dir); })) {
      g_created_dirs.push_back(d);
      note_created_dir(d);
    }
    next_number[j.out_dir] = 0;
  }
  // Models are loaded once and kept while consecutive jobs share model, precision and device.
  std::unique_ptr<Pipeline> pipe;
  std::string loaded_key;
  std::random_device rd;
  std::map<size_t, uint64_t> random_seed;  // per job without a seed (unplanned runs only)
  std::vector<std::string> not_written;    // images whose latents or pixels were not finite
  // Jobs with one key run on one loaded pipeline.
  auto key_of = [&](size_t i, Device device) {
    std::string k = model_paths[i] + "|" + opt.jobs[i].precision + "|" + device_name(device) + "|" + opt.jobs[i].vae + (opt.jobs[i].ema ? "|ema" : "");
    for (const std::string& e : opt.jobs[i].embeddings) k += "|" + e;
    for (const LoraSpec& l : job_loras(opt.jobs[i])) k += "|lora:" + l.file + ":" + std::to_string(l.scale);
    return k;
  };
  bool said_why_cpu = false;
  for (size_t c = 0; c < calls.size(); ++c) {
    const size_t k = calls[c].job;
    const Job& j = opt.jobs[k];
    std::string why_cpu;
    const Device device = pick_device(j.device, &why_cpu);
    const DType precision = j.precision == "fp16" ? DType::F16 : DType::F32;
    const std::string key = key_of(k, device);
    // The next job's key; a device that cannot start is reported when that job runs.
    auto pipeline_key = [&](size_t i) -> std::string {
      try {
        return key_of(i, pick_device(opt.jobs[i].device));
      } catch (const Error&) {
        return "";
      }
    };
    // Call d keeps its recorded step for the next call when that one runs on this pipeline too.
    auto keeps_step_graph = [&](size_t d) { return d + 1 < calls.size() && pipeline_key(calls[d + 1].job) == key; };
    if (key != loaded_key) {
      pipe.reset();
      // --device auto that fell back says why on this line, once: no extra line, no silent CPU run.
      const std::string why = why_cpu.empty() || said_why_cpu ? "" : "; no GPU to use: " + why_cpu;
      said_why_cpu = said_why_cpu || !why.empty();
      progress.log("loading " + model_paths[k] + " (" + j.precision + ", " + device_name(device) + why + ")");
      // The memory check, before a weight loads: the calls this pipeline will run, each with the
      // step graph kept or not as below, against what the device has free (and --max-memory).
      auto check_memory = [&](const ModelConfig& cfg) {
        const MemoryLimit limit = memory_limit(device, max_memory);
        for (size_t d = c; d < calls.size() && pipeline_key(calls[d].job) == key; ++d) {
          const Job& dj = opt.jobs[calls[d].job];
          const std::string refusal = memory_refusal(cfg, limit, dj, calls[d].count, precision, device,
                                                     opt.cuda_graphs && keeps_step_graph(d));
          if (!refusal.empty()) throw LineError(ExitCode::kRuntime, line_prefix(dj) + refusal);
        }
      };
      pipe = at_line(j, [&] {
        return std::make_unique<Pipeline>(model_paths[k], precision, device, log,
                                          ModelOptions{j.vae, j.embeddings, job_loras(j), j.ema}, check_memory);
      });
      loaded_key = key;
    }
    GenerateParams gp;
    job_loras(j, &gp.prompt);  // the prompt without its <lora:...> tags
    gp.negative_prompt = j.negative_prompt;
    gp.batch = calls[c].count;
    gp.steps = j.steps;
    gp.guidance = j.guidance;
    if (!j.seed && !random_seed.count(k)) random_seed[k] = (((uint64_t)rd() << 32) | rd()) & 0xFFFFFFFFull;
    const uint64_t base_seed = j.seed ? *j.seed : random_seed[k];
    gp.seed = base_seed + (uint64_t)calls[c].first;  // per-image: image first+x has seed S+first+x
    gp.width = j.width;
    gp.height = j.height;
    gp.sampler = j.sampler;
    gp.schedule = j.schedule;
    gp.eta = j.eta;
    gp.clip_skip = j.clip_skip;
    gp.rng = job_rng(j);
    gp.seed_mode = job_seed_mode(j);
    gp.emphasis = j.emphasis;
    gp.cuda_graphs = opt.cuda_graphs;
    // Keep the recorded step for the next job when it runs on this pipeline (it is replayed when
    // its shapes and settings match); the last job frees it before its VAE decode, for the peak.
    gp.keep_step_graph = keeps_step_graph(c);
    if (!j.seed) progress.log("seed: " + std::to_string(gp.seed));
    GeneratedBatch out = pipe->generate(gp, [&](int d, int t) {
      check_interrupted();
      progress.step(d, t);
    });
    char times[160];
    std::snprintf(times, sizeof times, "text encoder %.2f s, unet %.2f s, vae %.2f s, total %.2f s",
                  out.times.text_s, out.times.unet_s, out.times.vae_s, out.times.total_s);
    progress.log(times);
    for (int i : calls[c].write) {
      check_interrupted();
      const int x = i - calls[c].first;          // in this call's images
      if (!out.not_finite[x].empty()) {  // never a black image in its place: reported, run goes on
        not_written.push_back(j.origin + " image " + std::to_string(i) + " (seed " + std::to_string(out.seeds[x]) +
                              "): " + out.not_finite[x] + " is not finite (NaN/Inf)");
        log("sd-gen: error: " + not_written.back() + "; not written");
        continue;
      }
      const uint64_t image_seed = out.seeds[x];  // seed+i in per-image mode
      const std::vector<uint8_t> png = encode_png(out.images[x].data(), out.width, out.height,
                                                  parameters_text(j, image_seed, i, pipe->model_name()));
      int number = planned ? numbers.at({k, i}) : next_number[j.out_dir];
      bool already_there = false;
      const std::string path = place_png(j, &number, planned, image_seed, i, png, &already_there);
      if (!planned && pattern_has_number(j.name_pattern)) next_number[j.out_dir] = number + 1;
      progress.log((already_there ? "kept " + path + " (already there, identical)" : "wrote " + path));
      if (opt.json || manifest) {
        nlohmann::json rec = {
            {"prompt", j.prompt}, {"negative_prompt", j.negative_prompt},
            {"seed", image_seed}, {"batch_index", i},
            {"settings", {{"steps", j.steps}, {"guidance", j.guidance}, {"width", j.width},
                          {"height", j.height}, {"sampler", j.sampler},
                          {"schedule", j.schedule}, {"eta", j.eta}, {"batch", j.batch},
                          {"rng", j.rng}, {"seed_mode", j.seed_mode}, {"base_seed", base_seed},
                          {"clip_skip", j.clip_skip}, {"vae", j.vae}, {"ema", j.ema}, {"embeddings", j.embeddings},
                          {"loras", [&] {
                             nlohmann::json a = nlohmann::json::array();
                             for (const LoraSpec& l : job_loras(j)) a.push_back({{"file", l.file}, {"scale", l.scale}});
                             return a;
                           }()},
                          {"precision", j.precision}, {"emphasis", j.emphasis}, {"device", device_name(device)},
                          {"model", pipe->model_name()}}},
            {"timings", {{"text_s", out.times.text_s}, {"unet_s", out.times.unet_s},
                         {"vae_s", out.times.vae_s}, {"total_s", out.times.total_s}}},
            // Device memory held at its highest so far (weights, activations, caches); null on the CPU.
            {"peak_device_bytes", out.peak_device_bytes ? nlohmann::json(out.peak_device_bytes) : nlohmann::json()}};
        set_record_paths(rec, path, j.out_dir);
        if (opt.json) std::cout << rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
        if (manifest) {
          rec["job"] = job_identity(j, base_seed, sha_of(k));
          rec["index"] = i;
          rec["origin"] = j.origin;
          rec["model_path"] = model_paths[k];
          rec["model_sha256"] = sha_of(k);
          rec["png_sha256"] = sha256_hex(png.data(), png.size());
          rec["shard"] = shard_spec;
          manifest->append(rec);
        }
      }
    }
  }
  if (!not_written.empty())
    throw_runtime(std::to_string(not_written.size()) + " image" + (not_written.size() > 1 ? "s were" : " was") +
                  " not written, not finite: " + not_written.front() + (not_written.size() > 1 ? " (and above)" : ""));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
#ifdef SDGEN_WITH_CUDA
  set_cuda_backend_factory(&load_cuda_plugin);
#endif
  int code = 0;
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "sd-gen: error: %s\n", e.what());
    code = (int)e.code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "sd-gen: error: out of memory\n");
    code = (int)ExitCode::kRuntime;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sd-gen: error: internal: %s\n", e.what());
    code = (int)ExitCode::kInternal;
  }
  remove_created_dirs(g_created_dirs);
  return code;
}
