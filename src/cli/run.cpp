// sd-gen's generation run (run.h): command line → plan → outputs → per call load, generate, write.
// Errors: one line on stderr, exit code by kind (README).
#include "cli/run.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <tuple>

#include "backend/cpu/blas_kernels.h"
#include "backend/cpu/cpu_backend.h"
#include "cli/batch.h"
#include "cli/control_images.h"
#include "cli/infotext.h"
#include "cli/manifest.h"
#include "cli/options.h"
#include "cli/preview.h"
#include "cli/progress.h"
#include "cli/settings.h"
#include "core/sha256.h"
#include "io/image_grid.h"
#include "io/png_writer.h"
#include "pipeline/memory_estimate.h"
#include "pipeline/pipeline.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

namespace fs = std::filesystem;

namespace sdgen::cli {

namespace {

// An error that names its line already (raised for another line than the one being loaded).
struct LineError : Error {
  using Error::Error;
};
// "p.txt:2: " for a prompt-file line; a --prompt run has no line to name.
// The job's SDXL size conditioning (Job: sizes {width, height}, crops {top, left}; -1 unset).
SizeConditioning size_conditioning(const Job& j) {
  SizeConditioning c;
  auto size = [](const std::array<int, 2>& v, int& h, int& w) {
    if (v[0] > 0) w = v[0], h = v[1];
  };
  auto crop = [](const std::array<int, 2>& v, int& top, int& left) {
    if (v[0] >= 0) top = v[0], left = v[1];
  };
  size(j.original_size, c.original_h, c.original_w);
  crop(j.crop_coords, c.crop_top, c.crop_left);
  size(j.target_size, c.target_h, c.target_w);
  c.negative_own = j.negative_original_size[0] > 0 || j.negative_crop_coords[0] >= 0 || j.negative_target_size[0] > 0;
  size(j.negative_original_size, c.neg_original_h, c.neg_original_w);
  crop(j.negative_crop_coords, c.neg_crop_top, c.neg_crop_left);
  size(j.negative_target_size, c.neg_target_h, c.neg_target_w);
  return c;
}

std::string line_prefix(const Job& j) { return j.origin.empty() || j.origin == "--prompt" ? "" : j.origin + ": "; }
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

// The options of the run as a whole (the command line only; per-prompt settings: cli/settings.h).
struct RunOption {
  const char* flags;
  const char* help;
  bool is_flag;
  std::function<void(RunOptions&, const std::string&)> set;
  const char* default_text = nullptr;
};

const std::vector<RunOption>& run_options() {
  static const std::vector<RunOption> all = {
      {"--prompt-file", "One prompt per line, or JSON Lines with per-line overrides of the options above", false,
       [](RunOptions& o, const std::string& t) { o.prompt_file = t; }},
      {"--cuda-graphs", "on or off: on CUDA, record the denoising step once and replay it", false,
       [](RunOptions& o, const std::string& t) {
         if (t != "on" && t != "off") throw_usage("--cuda-graphs '" + t + "' is not one of on, off");
         o.cuda_graphs = t == "on";
       },
       "on"},
      {"--from-png", "FILE: the prompts and settings of a PNG's parameters (ours or A1111's); options given here win",
       false, [](RunOptions& o, const std::string& t) { o.from_png = t; }},
      {"--grid", "Also write a contact sheet of each prompt's images (grid-<first image's name>.png)", true,
       [](RunOptions& o, const std::string&) { o.grid = true; }},
      {"--preview", "FILE: a PNG of the image taking shape (1/8 size), replaced after every --preview-every steps",
       false, [](RunOptions& o, const std::string& t) {
         if (t.empty()) throw_usage("--preview needs a file name");
         o.preview = t;
       }},
      {"--preview-every", "N: steps between previews (with --preview)", false,
       [](RunOptions& o, const std::string& t) {
         char* end = nullptr;
         const long n = std::strtol(t.c_str(), &end, 10);
         if (t.empty() || *end || n < 1 || n > 100000)
           throw_usage("--preview-every '" + t + "' is not a whole number of steps from 1 to 100000");
         o.preview_every = (int)n;
       },
       "1"},
      {"--json", "Print one JSON object per image on stdout", true, [](RunOptions& o, const std::string&) { o.json = true; }},
      {"--manifest", "Append one JSON line per finished image to FILE (fsync'ed)", false,
       [](RunOptions& o, const std::string& t) { o.manifest_path = t; }},
      {"--skip-existing", "With --manifest: skip images it records whose files still hold the recorded bytes (resume)",
       true, [](RunOptions& o, const std::string&) { o.skip_existing = true; }},
      {"--shard", "K/N: make part K (0-based) of N of the image set", false,
       [](RunOptions& o, const std::string& t) {
         parse_shard(t);  // checked here, used once the jobs are known
         o.shard_text = t;
       }},
      {"--max-memory", "SIZE (8G, 512M): refuse work whose estimated memory exceeds it (default: what the device has free)",
       false, [](RunOptions& o, const std::string& t) { o.max_memory = parse_byte_size(t, "--max-memory"); }},
      {"-q,--quiet", "Only errors on stderr", true, [](RunOptions& o, const std::string&) { o.quiet = true; }},
  };
  return all;
}

// The command line and the prompt file as jobs; nullopt when --help or --version answered.
std::optional<RunOptions> parse_command_line(int argc, char** argv) {
  CLI::App app{"sd-gen: Stable Diffusion v1.x text-to-image generator", "sd-gen"};
  app.footer("Benchmark: sd-gen bench [options] (see sd-gen bench --help)");
  app.get_formatter()->column_width(34);
  RunOptions opt;
  Job job;
  job.origin = "--prompt";
  // The PNG's settings are the defaults that every option on the command line overrides, before
  // or after --from-png: applied before the command line is read.
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--from-png" && i + 1 < argc) apply_png_parameters(job, argv[i + 1]);
    else if (a.rfind("--from-png=", 0) == 0) apply_png_parameters(job, a.substr(11));
    else continue;
    break;  // a second --from-png is CLI11's error below
  }
  add_settings(app, job);
  for (const RunOption& o : run_options()) {
    if (o.is_flag) {
      app.add_flag_callback(o.flags, [&opt, &o] { o.set(opt, ""); }, o.help);
      continue;
    }
    CLI::Option* added = app.add_option(
        o.flags, [&opt, &o](const CLI::results_t& r) { return o.set(opt, r.front()), true; }, o.help);
    added->type_name("TEXT")->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::Throw);
    if (o.default_text) added->default_str(o.default_text);
  }
  app.set_version_flag("--version", std::string("sd-gen ") + SDGEN_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::CallForVersion&) {
    const CpuFeatures& cpu = cpu_features();
    std::cout << "sd-gen " << SDGEN_VERSION << "\nCPU: " << cpu.model_name << " (" << cpu.vendor << " family "
              << cpu.family << " model " << cpu.model << "): " << cpu.extensions() << "\nGEMM: " << blas_description()
              << "\nbf16 GEMM: " << cpu::bf16_gemm_description() << "\n";
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    throw_usage(std::string(e.what()) + " (see sd-gen --help)");
  }
  if (opt.preview_every && opt.preview.empty()) throw_usage("--preview-every needs --preview FILE");
  if (!opt.preview.empty() && !opt.preview_every) opt.preview_every = 1;
  if (!opt.preview.empty() && std::filesystem::is_directory(opt.preview))
    throw_usage("--preview " + opt.preview + " is a folder; give a file name");
  if (!opt.prompt_file.empty()) {
    if (!opt.from_png.empty()) throw_usage("give --from-png or --prompt-file, not both");
    if (!job.prompt.empty()) throw_usage("give --prompt or --prompt-file, not both");
    opt.jobs = read_prompt_file(opt.prompt_file, job);
  } else {
    if (job.prompt.empty()) throw_usage("no prompt: pass --prompt TEXT or --prompt-file FILE (see sd-gen --help)");
    finish_job(job);
    opt.jobs.push_back(job);
  }
  return opt;
}

// Jobs with equal keys run on one loaded pipeline.
struct PipelineKey {
  std::string model_path;
  DType precision;
  Device device;
  std::string vae;
  std::string vae_tiny;
  std::vector<EmbeddingSpec> embeddings;
  std::vector<LoraSpec> loras;
  bool ema;
  bool operator==(const PipelineKey& o) const {
    auto same_embeddings = [&] {
      if (embeddings.size() != o.embeddings.size()) return false;
      for (size_t i = 0; i < embeddings.size(); ++i)
        if (embeddings[i].file != o.embeddings[i].file || embeddings[i].token != o.embeddings[i].token) return false;
      return true;
    };
    return std::tie(model_path, precision, device, vae, vae_tiny, loras, ema) ==
               std::tie(o.model_path, o.precision, o.device, o.vae, o.vae_tiny, o.loras, o.ema) &&
           same_embeddings();
  }
};

class GenerationRun {
 public:
  GenerationRun(RunOptions opt, const RunHooks& hooks)
      : opt_(std::move(opt)), hooks_(hooks), progress_(opt_.quiet) {}
  void run() {
    check_jobs();
    plan_images();
    prepare_outputs();
    for (size_t c = 0; c < calls_.size(); ++c) run_call(c);
    if (!not_written_.empty())
      throw_runtime(std::to_string(not_written_.size()) + " image" + (not_written_.size() > 1 ? "s were" : " was") +
                    " not written, not finite: " + not_written_.front() + (not_written_.size() > 1 ? " (and above)" : ""));
  }

 private:
  void log(const std::string& m) const { std::fprintf(stderr, "%s\n", m.c_str()); }

  // Everything that can be checked without loading a model, for every job, before any work.
  void check_jobs() {
    for (Job& j : opt_.jobs) {
      std::string path;
      auto resolved = [&] {
        if (path.empty()) path = at_line(j, [&] { return resolve_model_path(j.model); });
        return path;
      };
      validate_job_for_model(j, [&] { return default_side(resolved()); });
      model_paths_.push_back(resolved());
    }
    check_distinct_names(opt_.jobs);
    check_one_gpu(opt_.jobs);
  }

  // A planned run (--shard, --skip-existing) fixes every image's name and bytes by its job alone,
  // so that its parts and reruns add up to one run's image set (README "Batch runs").
  void plan_images() {
    planned_ = !opt_.shard_text.empty() || opt_.skip_existing;
    if (opt_.skip_existing && opt_.manifest_path.empty())
      throw_usage("--skip-existing needs --manifest FILE: it skips the images recorded there");
    if (planned_)
      for (const Job& j : opt_.jobs)
        if (!j.seed)
          throw_usage(j.origin + ": " + (opt_.skip_existing ? "--skip-existing" : "--shard") +
                      " needs a fixed seed (--seed S, or \"seed\" on the line): a random one cannot be resumed or split");
    // A sheet shows what one run made: a part or a resumed run would show a part of it.
    if (planned_ && opt_.grid) throw_usage("--grid cannot be combined with --shard or --skip-existing");
    const Shard shard = parse_shard(opt_.shard_text.empty() ? "0/1" : opt_.shard_text);
    shard_spec_ = std::to_string(shard.k) + "/" + std::to_string(shard.n);
    const std::vector<ImageRef> mine = shard_images(opt_.jobs, shard);
    if (planned_) numbers_ = planned_numbers(opt_.jobs);
    if (!opt_.manifest_path.empty())
      manifest_ = std::make_unique<Manifest>(opt_.manifest_path, [this](const std::string& m) { log(m); });
    // Parts of another split would not add up: Slurm's $SLURM_ARRAY_TASK_COUNT is 1 when one task
    // is resubmitted alone (--array=2), which would turn part 2/4 into 0/1, the whole set.
    if (opt_.skip_existing)
      for (const std::string& s : manifest_->shards())
        if (s != shard_spec_)
          throw_usage("--manifest " + opt_.manifest_path + " holds images of --shard " + s + ", this run is --shard " +
                      shard_spec_ + ": resume each part with the K/N it started with (README \"Batch runs\")");
    std::vector<ImageRef> todo;
    for (const ImageRef& r : mine) {
      const Job& j = opt_.jobs[r.job];
      if (opt_.skip_existing && manifest_->done(job_identity(j, *j.seed, sha_of(r.job)), r.index, j.out_dir)) continue;
      todo.push_back(r);
    }
    if (opt_.skip_existing && todo.size() < mine.size())
      progress_.log("skipping " + std::to_string(mine.size() - todo.size()) + " of " + std::to_string(mine.size()) +
                    " images: done in " + opt_.manifest_path);
    if (shard.n > 1)
      progress_.log("shard " + opt_.shard_text + ": " + std::to_string(mine.size()) + " images of the run's set");
    calls_ = plan_calls(opt_.jobs, todo, planned_);
    if (manifest_)  // hashed before the first model load: an unreadable model fails early
      for (const Call& c : calls_) sha_of(c.job);
  }

  void prepare_outputs() {
    for (const Call& c : calls_) {
      const Job& j = opt_.jobs[c.job];
      if (next_number_.count(j.out_dir)) continue;
      for (const std::string& d : at_line(j, [&] { return prepare_output_dir(j.out_dir); })) hooks_.dir_created(d);
      next_number_[j.out_dir] = 0;
    }
  }

  // The model's SHA-256 for the manifest, hashed once per model path in this run.
  const std::string& sha_of(size_t job) {
    const std::string& path = model_paths_[job];
    auto it = model_sha_.find(path);
    if (it != model_sha_.end()) return it->second;
    progress_.log("hashing " + path + " (SHA-256, for the manifest)");
    return model_sha_[path] = model_sha256(path);
  }

  PipelineKey key_of(size_t job, Device device) const {
    const Job& j = opt_.jobs[job];
    std::vector<EmbeddingSpec> embeddings;
    for (const EmbeddingArg& e : j.embeddings) embeddings.push_back({e.file, e.token});
    return {model_paths_[job], j.precision, device, j.vae, j.vae_tiny, embeddings, job_loras(j), j.ema};
  }
  // Call d's key; none when its device cannot start (reported when that call runs).
  std::optional<PipelineKey> key_of_call(size_t d) const {
    if (d >= calls_.size()) return std::nullopt;
    try {
      return key_of(calls_[d].job, pick_device(opt_.jobs[calls_[d].job].device));
    } catch (const Error&) {
      return std::nullopt;
    }
  }
  // Call d keeps its recorded step for the next call when that one runs on this pipeline too.
  bool keeps_step_graph(size_t d) const { return key_of_call(d + 1) == loaded_key_; }

  // Loads call c's pipeline, after the memory check of the calls it will run.
  void load(size_t c, Device device, const std::string& why_cpu) {
    const Job& j = opt_.jobs[calls_[c].job];
    pipe_.reset();
    // --device auto that fell back says why on this line, once: no extra line, no silent CPU run.
    const std::string why = why_cpu.empty() || said_why_cpu_ ? "" : "; no GPU to use: " + why_cpu;
    said_why_cpu_ = said_why_cpu_ || !why.empty();
    progress_.log("loading " + model_paths_[calls_[c].job] + " (" + dtype_name(j.precision) + ", " +
                  device_name(device) + why + ")");
    loaded_key_ = key_of(calls_[c].job, device);
    // Before a weight loads: the calls this pipeline will run, each with the step graph kept or
    // not, against what the device has free (and --max-memory).
    auto check_memory = [&](const ModelConfig& cfg) {
      const MemoryLimit limit = memory_limit(device, opt_.max_memory);
      for (size_t d = c; d < calls_.size() && key_of_call(d) == loaded_key_; ++d) {
        const Job& dj = opt_.jobs[calls_[d].job];
        // A job's texts for a second text encoder the model lacks, before its weights load.
        if (!cfg.sdxl() && (!dj.prompt_2.empty() || !dj.negative_prompt_2.empty()))
          throw LineError(ExitCode::kUsage, line_prefix(dj) + "--prompt-2 and --negative-prompt-2 are for SDXL's second "
                                                              "text encoder; this model has one");
        const std::string refusal = memory_refusal(cfg, limit, dj, calls_[d].count, dj.precision, device,
                                                   opt_.cuda_graphs && keeps_step_graph(d));
        if (!refusal.empty()) throw LineError(ExitCode::kRuntime, line_prefix(dj) + refusal);
      }
    };
    std::vector<EmbeddingSpec> embeddings = loaded_key_->embeddings;
    // The VAE encoder is loaded (and estimated) when a job on this pipeline starts from a picture.
    bool need_encoder = false;
    for (size_t d = c; d < calls_.size() && key_of_call(d) == loaded_key_; ++d)
      need_encoder = need_encoder || !opt_.jobs[calls_[d].job].init_image.empty() ||
                     (job_hires(opt_.jobs[calls_[d].job]).enabled() &&
                      !is_latent_upscaler(opt_.jobs[calls_[d].job].hires_upscaler));
    // The ControlNets of the jobs on this pipeline load with it (and are in its memory check).
    std::vector<std::string> controlnets;
    for (size_t d = c; d < calls_.size() && key_of_call(d) == loaded_key_; ++d)
      for (const ControlArg& a : opt_.jobs[calls_[d].job].controls)
        if (std::find(controlnets.begin(), controlnets.end(), a.file) == controlnets.end()) controlnets.push_back(a.file);
    pipe_ = at_line(j, [&] {
      return std::make_unique<Pipeline>(model_paths_[calls_[c].job], j.precision, device,
                                        [this](const std::string& m) { log(m); },
                                        ModelOptions{j.vae, embeddings, job_loras(j), j.ema, need_encoder, j.vae_tiny,
                                                     controlnets},
                                        check_memory);
    });
  }

  GenerateParams params_of(size_t c, uint64_t base_seed) const {
    const Job& j = opt_.jobs[calls_[c].job];
    GenerateParams gp;
    gp.prompt = j.text_prompt;  // the prompt without its <lora:...> tags
    gp.negative_prompt = j.negative_prompt;
    gp.prompt_2 = j.prompt_2;
    gp.negative_prompt_2 = j.negative_prompt_2;
    gp.batch = calls_[c].count;
    gp.steps = j.steps;
    gp.guidance = j.guidance;
    gp.guidance_rescale = j.guidance_rescale;
    gp.seed = base_seed + (uint64_t)calls_[c].first;  // per-image: image first+x has seed S+first+x
    gp.width = j.width;
    gp.height = j.height;
    gp.size_cond = size_conditioning(j);
    gp.sampler = j.sampler;
    gp.clip_skip = j.clip_skip;
    gp.text_cleanup = j.text_cleanup;
    gp.prediction_type = j.prediction_type;
    gp.vae_batch = j.vae_batch;
    gp.rng = j.rng;
    gp.seed_mode = j.seed_mode;
    gp.emphasis = j.emphasis;
    gp.cuda_graphs = opt_.cuda_graphs;
    // Keep the recorded step for the next job when it runs on this pipeline (it is replayed when
    // its shapes and settings match); the last job frees it before its VAE decode, for the peak.
    gp.keep_step_graph = keeps_step_graph(c);
    if (!j.init_image.empty()) {
      gp.init_image = init_picture(j, j.init_image, "--init-image");
      gp.strength = j.strength;
      if (!j.mask.empty()) gp.mask = init_picture(j, j.mask, "--mask");
      gp.mask_blur = j.mask_blur;
      gp.inpaint_masked = j.inpaint_masked;
      gp.inpaint_padding = j.inpaint_padding;
      gp.inpaint_latent_noise = j.inpaint_latent_noise;
    }
    gp.hires = job_hires(j);
    for (size_t i = 0; i < j.controls.size(); ++i)
      gp.controls.push_back({j.controls[i].file, control_picture(j, j.control_images[i]), j.controls[i].scale});
    gp.control_start = j.control_start;
    gp.control_end = j.control_end;
    gp.guess_mode = j.guess_mode;
    if (!opt_.preview.empty()) {
      gp.preview_every = opt_.preview_every;
      const std::string path = opt_.preview;
      gp.preview = [path](int, int, const std::vector<float>& x0, int images, int h, int w) {
        write_preview(path, x0, images, h, w);
      };
      gp.preview_pictures = [path](int, int, const std::vector<RgbImage>& pictures) { write_preview(path, pictures); };
    }
    return gp;
  }

  // A picture of the job (--init-image, --mask) at its size, read and resized once per file, size and mode.
  // With --inpaint-area masked both keep their own size (pipeline/inpaint_area.h crops them).
  std::shared_ptr<const RgbImage> init_picture(const Job& j, const std::string& file, const char* option) const {
    const bool own_size = j.inpaint_masked && !j.mask.empty();
    const std::string key = file + "|" + (own_size ? std::string("own") : std::to_string(j.width) + "x" +
                                          std::to_string(j.height) + "|" + resize_mode_name(j.resize_mode));
    auto& slot = pictures_[key];
    if (!slot) {
      RgbImage im = read_image(file, line_prefix(j) + option);
      slot = std::make_shared<const RgbImage>(own_size ? std::move(im)
                                                       : fit_image(im, j.width, j.height, j.resize_mode));
    }
    return slot;
  }

  // A control image as the ControlNet gets it (preprocessed when asked; the pipeline resizes it), read
  // once per file and preprocessing.
  std::shared_ptr<const RgbImage> control_picture(const Job& j, const std::string& file) const {
    const std::string key = "control|" + file + "|" + control_preprocess_key(j);
    auto& slot = pictures_[key];
    if (!slot) slot = std::make_shared<const RgbImage>(preprocess_control(j, read_image(file, line_prefix(j) + "--control-image")));
    return slot;
  }

  void run_call(size_t c) {
    const size_t k = calls_[c].job;
    const Job& j = opt_.jobs[k];
    std::string why_cpu;
    const Device device = pick_device(j.device, &why_cpu);
    if (!(key_of(k, device) == loaded_key_)) load(c, device, why_cpu);
    if (!j.seed && !random_seed_.count(k)) random_seed_[k] = (((uint64_t)rd_() << 32) | rd_()) & 0xFFFFFFFFull;
    const uint64_t base_seed = j.seed ? *j.seed : random_seed_[k];
    const GenerateParams gp = params_of(c, base_seed);
    if (!j.seed) progress_.log("seed: " + std::to_string(gp.seed));
    const GeneratedBatch out = pipe_->generate(gp, [&](int d, int t) {
      hooks_.check_interrupted();
      progress_.step(d, t);
    });
    char times[160];
    std::snprintf(times, sizeof times, "text encoder %.2f s, unet %.2f s, vae %.2f s, total %.2f s",
                  out.times.text_s, out.times.unet_s, out.times.vae_s, out.times.total_s);
    progress_.log(times);
    RecordContext ctx;
    ctx.base_seed = base_seed;
    ctx.device = device;
    ctx.model_name = pipe_->model_name();
    for (int i : calls_[c].write) {
      hooks_.check_interrupted();
      write_image(c, i, out, ctx);
    }
    if (opt_.grid && (c + 1 == calls_.size() || calls_[c + 1].job != k)) write_grid(j, out.width, out.height);
  }

  // --grid: the sheet of the job's images this run wrote, beside them, when there are two or more
  // (A1111's default), with the first image's parameters.
  void write_grid(const Job& j, int width, int height) {
    std::vector<GridCell> cells = std::move(grid_cells_);
    grid_cells_.clear();
    if (cells.size() < 2) return;
    std::vector<const uint8_t*> images;
    for (const GridCell& g : cells) images.push_back(g.pixels.data());
    const RgbImage sheet = compose_grid(images, width, height);
    const std::vector<uint8_t> png = encode_png(sheet.pixels.data(), sheet.width, sheet.height, cells[0].parameters);
    const std::string path = j.out_dir + "/grid-" + fs::path(cells[0].path).filename().string();
    if (!write_file_exclusive(path, png.data(), png.size())) {
      std::ifstream f(path, std::ios::binary);
      const std::vector<uint8_t> have((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (have != png) throw_output(path + " exists and holds another image; not overwriting it");
    }
    progress_.log("wrote " + path + " (" + std::to_string(sheet.width) + "x" + std::to_string(sheet.height) + ")");
    if (!opt_.json && !manifest_) return;
    nlohmann::json rec = {{"grid", path}, {"images", nlohmann::json::array()},
                          {"rows", grid_shape((int)cells.size()).rows}, {"cols", grid_shape((int)cells.size()).cols}};
    for (const GridCell& g : cells) rec["images"].push_back(g.path);
    if (opt_.json) std::cout << rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    if (!manifest_) return;
    rec["origin"] = j.origin;
    rec["png_sha256"] = sha256_hex(png.data(), png.size());
    manifest_->append(rec);
  }

  // Image i of call c: its PNG, and its --json record and manifest line.
  void write_image(size_t c, int i, const GeneratedBatch& out, const RecordContext& ctx) {
    const size_t k = calls_[c].job;
    const Job& j = opt_.jobs[k];
    const int x = i - calls_[c].first;  // in this call's images
    if (!out.not_finite[x].empty()) {   // never a black image in its place: reported, run goes on
      not_written_.push_back(j.origin + " image " + std::to_string(i) + " (seed " + std::to_string(out.seeds[x]) +
                             "): " + out.not_finite[x] + " is not finite (NaN/Inf)");
      log("sd-gen: error: " + not_written_.back() + "; not written");
      return;
    }
    const uint64_t image_seed = out.seeds[x];  // seed+i in per-image mode
    const std::string parameters = parameters_text(j, image_seed, i, ctx.model_name);
    const std::vector<uint8_t> png = encode_png(out.images[x].data(), out.width, out.height, parameters);
    int number = planned_ ? numbers_.at({k, i}) : next_number_[j.out_dir];
    bool already_there = false;
    const std::string path = place_png(j, &number, planned_, image_seed, i, png, &already_there);
    if (!planned_ && pattern_has_number(j.name_pattern)) next_number_[j.out_dir] = number + 1;
    progress_.log(already_there ? "kept " + path + " (already there, identical)" : "wrote " + path);
    if (opt_.grid) grid_cells_.push_back({path, out.images[x], parameters});
    if (!opt_.json && !manifest_) return;
    nlohmann::json settings = settings_record(j, ctx);
    nlohmann::json rec = {
        {"prompt", j.prompt}, {"negative_prompt", j.negative_prompt}, {"seed", image_seed}, {"batch_index", i},
        {"settings", settings},
        {"timings", {{"text_s", out.times.text_s}, {"unet_s", out.times.unet_s}, {"vae_s", out.times.vae_s},
                     {"total_s", out.times.total_s}}},
        // Device memory held at its highest so far (weights, activations, caches); null on the CPU.
        {"peak_device_bytes", out.peak_device_bytes ? nlohmann::json(out.peak_device_bytes) : nlohmann::json()}};
    set_record_paths(rec, path, j.out_dir);
    if (opt_.json) std::cout << rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    if (!manifest_) return;
    rec["job"] = job_identity(j, ctx.base_seed, sha_of(k));
    rec["index"] = i;
    rec["origin"] = j.origin;
    rec["model_path"] = model_paths_[k];
    rec["model_sha256"] = sha_of(k);
    rec["png_sha256"] = sha256_hex(png.data(), png.size());
    rec["shard"] = shard_spec_;
    manifest_->append(rec);
  }

  RunOptions opt_;
  RunHooks hooks_;
  Progress progress_;
  std::vector<std::string> model_paths_;  // per job
  bool planned_ = false;
  std::string shard_spec_;
  std::map<ImageRef, int> numbers_;                 // planned runs: each image's {n}
  std::map<std::string, int> next_number_;          // unplanned runs: per output folder
  std::vector<Call> calls_;
  std::unique_ptr<Manifest> manifest_;
  std::map<std::string, std::string> model_sha_;    // per model path
  std::unique_ptr<Pipeline> pipe_;
  mutable std::map<std::string, std::shared_ptr<const RgbImage>> pictures_;  // init_picture's
  std::optional<PipelineKey> loaded_key_;
  bool said_why_cpu_ = false;
  std::random_device rd_;
  std::map<size_t, uint64_t> random_seed_;  // per job without a seed (unplanned runs only)
  std::vector<std::string> not_written_;    // images whose latents or pixels were not finite
  struct GridCell {
    std::string path;
    std::vector<uint8_t> pixels;
    std::string parameters;
  };
  std::vector<GridCell> grid_cells_;  // --grid: the current job's images written so far
};

}  // namespace

int run_generation(int argc, char** argv, const RunHooks& hooks) {
  std::optional<RunOptions> opt = parse_command_line(argc, argv);
  if (!opt) return 0;
  GenerationRun(std::move(*opt), hooks).run();
  return 0;
}

}  // namespace sdgen::cli
