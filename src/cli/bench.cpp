// sd-gen bench (bench.h): parse and validate everything first, then per configuration load the
// model (timed), run one warm-up generation and --repeats timed ones, and collect the figures.
#include "cli/bench.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "backend/cpu/blas_kernels.h"
#include "backend/cpu/cpu_backend.h"
#include "cli/batch.h"
#include "cli/options.h"
#include "cli/settings.h"
#include "cli/progress.h"
#include "cli/strict_options.h"
#include "core/device_memory.h"
#include "core/peak_flops.h"
#include "io/checkpoint.h"
#include "pipeline/flops.h"
#include "pipeline/memory_estimate.h"
#include "pipeline/pipeline.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

namespace sdgen::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  return out;
}

std::vector<DType> parse_precisions(const std::string& s) {
  std::vector<DType> out;
  for (const std::string& p : split_list(s)) {
    if (p == "fp32") out.push_back(DType::F32);
    else if (p == "fp16") out.push_back(DType::F16);
    else if (p == "bf16") out.push_back(DType::BF16);
    else throw_usage("--precision '" + p + "' is not one of fp32, fp16, bf16 (a comma-separated list)");
  }
  if (out.empty()) throw_usage("--precision is empty: give fp32, fp16, bf16 or a list such as fp32,fp16");
  return out;
}

std::vector<bool> parse_graphs(const std::string& s) {
  std::vector<bool> out;
  for (const std::string& g : split_list(s)) {
    if (g == "on") out.push_back(true);
    else if (g == "off") out.push_back(false);
    else throw_usage("--cuda-graphs '" + g + "' is not one of on, off (a comma-separated list)");
  }
  if (out.empty()) throw_usage("--cuda-graphs is empty: give on, off or on,off");
  return out;
}


// VmHWM: the resident set at its highest, in bytes; 0 when /proc is not there.
size_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return (size_t)std::stoull(line.substr(6)) * 1024;
  return 0;
}

// Lowers VmHWM to the current resident set (Linux's clear_refs "5"), so each configuration's peak
// is its own and not the previous one's. False where the kernel refuses it.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return (bool)f;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Request {
  std::string model_path;
  Device device = Device::CPU;
  GenerateParams gp;
  int repeats = 1;
  bool quiet = false;
};

// before_weights: the memory check, given the model's config before a weight loads (Pipeline).
BenchResult run_one(const Request& q, const BenchConfig& cfg, Progress& progress,
                    const std::function<void()>& check_interrupted,
                    const std::function<void(const ModelConfig&)>& before_weights) {
  const std::string label = std::string(dtype_name(cfg.precision)) +
                            (cfg.cuda_graphs ? (*cfg.cuda_graphs ? ", graphs on" : ", graphs off") : "");
  // The previous configuration's freed blocks go back to the system first, or the peak would
  // start from them (device_memory.h).
  release_kept_host_blocks();
  const bool rss_reset = reset_peak_rss();
  progress.log("bench: " + label + ": loading " + q.model_path + " (" + device_name(q.device) + ")");
  auto log = [&](const std::string& m) { progress.log(m); };
  const auto t_load = Clock::now();
  auto pipe = std::make_unique<Pipeline>(q.model_path, cfg.precision, q.device, log, ModelOptions{}, before_weights);
  BenchResult r;
  r.weight_load_s = seconds_since(t_load);
  r.config = cfg;
  r.device = q.device;
  r.device_name = backend_for(q.device).name();
  r.model = is_random_model(q.model_path) ? q.model_path : pipe->model_name();
  r.batch = q.gp.batch, r.steps = q.gp.steps, r.width = q.gp.width, r.height = q.gp.height;
  r.guidance = q.gp.guidance, r.repeats = q.repeats;

  GenerateParams gp = q.gp;
  gp.cuda_graphs = cfg.cuda_graphs.value_or(true);
  auto on_step = [&](int d, int t) {
    check_interrupted();
    progress.step(d, t);
  };
  std::vector<double> total, text, unet, vae, ips;
  GeneratedBatch out;
  for (int k = 0; k <= q.repeats; ++k) {
    progress.log(k == 0 ? "bench: " + label + ": warm-up"
                        : "bench: " + label + ": run " + std::to_string(k) + "/" + std::to_string(q.repeats));
    out = pipe->generate(gp, on_step);
    check_interrupted();
    char line[160];
    std::snprintf(line, sizeof line, "bench: text %.3f s, unet %.3f s, vae %.3f s, total %.3f s",
                  out.times.text_s, out.times.unet_s, out.times.vae_s, out.times.total_s);
    progress.log(line);
    if (k == 0) continue;  // the warm-up is not counted
    total.push_back(out.times.total_s);
    text.push_back(out.times.text_s);
    unet.push_back(out.times.unet_s / gp.steps);
    vae.push_back(out.times.vae_s);
    ips.push_back(gp.batch / out.times.total_s);
  }
  r.total_s = stats_of(total), r.text_s = stats_of(text), r.unet_per_step_s = stats_of(unet);
  r.vae_s = stats_of(vae), r.images_per_s = stats_of(ips);
  r.peak_rss_bytes = peak_rss_bytes();
  if (!rss_reset) progress.log("bench: could not reset the peak resident set; it is the process's so far");
  if (q.device != Device::CPU) r.peak_device_bytes = out.peak_device_bytes;

  const WorkloadFlops w =
      workload_flops(pipe->checkpoint().config(), gp.batch, gp.width, gp.height, gp.steps, gp.guidance);
  r.clip_flop = w.clip, r.unet_flop_per_step = w.unet_per_step, r.vae_flop = w.vae, r.total_flop = w.total;
  std::optional<PeakFlops> peak = q.device == Device::CPU ? std::optional<PeakFlops>(cpu_peak_flops())
                                                          : gpu_peak_flops(r.device_name);
  if (peak) {
    r.peak_flop_per_s = peak->for_precision(cfg.precision);
    r.peak_source = peak->how;
    // Without a bf16 GEMM library the CPU widens bf16 to fp32 and computes at the fp32 rate.
    if (q.device == Device::CPU && cfg.precision == DType::BF16 && !cpu::bf16_gemm_available()) {
      r.peak_flop_per_s = peak->fp32;
      r.peak_source += "; this run widens bf16 to fp32: the fp32 peak";
    }
    std::vector<double> mfu;
    for (double t : total) mfu.push_back(w.total / t / *r.peak_flop_per_s);
    r.mfu = stats_of(mfu);
  } else {
    r.peak_source = "no peak known for " + r.device_name + " (src/core/peak_flops.cpp)";
  }
  return r;
}

}  // namespace

Stats stats_of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {median, v.front(), v.back()};
}

int run_bench(int argc, char** argv, const std::function<void()>& check_interrupted) {
  CLI::App app{"sd-gen bench: time the generation workload per precision (and CUDA graphs on/off), "
               "with per-stage times, peak memory and MFU",
               "sd-gen bench"};
  app.get_formatter()->column_width(34);
  Job job;
  job.prompt = "a lighthouse at dusk, oil painting";
  job.batch = 3;
  job.seed = 42;
  std::string precisions = "fp32,fp16,bf16", graphs;
  int repeats = 0;
  std::string max_memory_text;
  bool json = false, quiet = false;
  // Generation's own settings (cli/settings.h), parsed and checked as sd-gen's.
  add_settings(app, job, {"--model", "--device", "--batch", "--steps", "--width", "--height", "--guidance", "--prompt", "--seed"},
               {{"--model", "Checkpoint, or random:sd15 / random:sd21 / random:sdxl (full-size SD 1.5 / SD 2.1 768-v / SDXL base shapes, random weights, no download)"},
                {"--batch", "Images per generation (default 3)"},
                {"--prompt", "Prompt (default: a lighthouse at dusk, oil painting)"},
                {"--seed", "Noise seed 0..2^64-1 (default 42; a benchmark's is never random)"}});
  app.add_option("--precision", precisions, "Comma-separated: fp32, fp16, bf16")->capture_default_str();
  auto* graphs_opt = app.add_option("--cuda-graphs", graphs, "Comma-separated on, off (CUDA only; default on,off)");
  app.add_option("--repeats", repeats, "Timed generations after one warm-up (default 3; 1 on the CPU)")
      ->check(decimal_integer().description(""));
  app.add_option("--max-memory", max_memory_text,
                 "SIZE (8G, 512M): refuse configurations whose estimated memory exceeds it (default: what the device has free)");
  app.add_flag("--json", json, "One JSON object per configuration on stdout");
  app.add_flag("-q,--quiet", quiet, "Only errors on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    throw_usage(std::string(e.what()) + " (see sd-gen bench --help)");
  }

  // Everything is checked before a model is loaded. The seed as generation reads it (decimal,
  // 0..2^64-1); a benchmark's images must be the same each run, so -1 (random) is refused.
  if (!job.seed) throw_usage("--seed -1 (random) does not apply to bench: its runs must be comparable");
  const std::vector<DType> precs = parse_precisions(precisions);
  const uint64_t max_memory = max_memory_text.empty() ? 0 : parse_byte_size(max_memory_text, "--max-memory");
  job.origin = "";
  finish_job(job);
  std::string model_path;
  validate_job_for_model(job, [&] { return default_side(model_path = resolve_model_path(job.model)); });
  if (graphs_opt->count() && job.device.kind == DeviceSpec::Cpu)
    throw_usage("--cuda-graphs applies to CUDA only; --device cpu has no graphs");
  std::vector<bool> graph_settings = parse_graphs(graphs_opt->count() ? graphs : "on,off");
  if (app.count("--repeats") && (repeats < 1 || repeats > 1000))
    throw_usage("--repeats " + std::to_string(repeats) + " must be between 1 and 1000");
  Request q;
  q.model_path = model_path.empty() ? resolve_model_path(job.model) : model_path;
  q.device = pick_device(job.device);
  if (q.device == Device::CPU && graphs_opt->count())
    throw_usage("--cuda-graphs applies to CUDA only; this run is on the CPU (no CUDA device)");
  q.repeats = app.count("--repeats") ? repeats : (q.device == Device::CPU ? 1 : 3);
  q.gp.prompt = job.text_prompt;
  q.gp.batch = job.batch, q.gp.steps = job.steps, q.gp.guidance = job.guidance;
  q.gp.width = job.width, q.gp.height = job.height, q.gp.seed = *job.seed;
  q.quiet = quiet;

  // Configurations in the order asked. On CUDA, fp16 ones run first: the backend's device peak
  // cannot be reset within a process and its pool keeps what it took, so the smaller working set
  // must be measured before the larger one (the table keeps the order asked).
  std::vector<BenchConfig> configs;
  for (DType p : precs) {
    if (q.device == Device::CPU) configs.push_back({p, std::nullopt});
    else
      for (bool g : graph_settings) configs.push_back({p, g});
  }
  std::vector<size_t> order(configs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (q.device != Device::CPU)
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return is_half_dtype(configs[a].precision) > is_half_dtype(configs[b].precision);
    });

  // Generation's memory check (cli/options.h), for every configuration at once, before the first
  // one loads a weight: a benchmark that cannot finish is refused whole (exit 5), not after the
  // configurations that fit. Each configuration keeps its recorded step between its runs
  // (GenerateParams::keep_step_graph) when its graphs are on.
  auto check_memory = [&](const ModelConfig& model) {
    const MemoryLimit limit = memory_limit(q.device, max_memory);
    for (size_t i : order) {
      const std::string refusal = memory_refusal(model, limit, job, job.batch, configs[i].precision, q.device,
                                                 q.device != Device::CPU && configs[i].cuda_graphs.value_or(true));
      if (!refusal.empty()) throw_runtime(refusal);
    }
  };
  Progress progress(quiet);
  progress.log("bench: CPU " + cpu_features().model_name + " (" + cpu_features().extensions() + "); GEMM " +
               blas_description() + "; bf16 GEMM " + cpu::bf16_gemm_description());
  std::vector<BenchResult> results(configs.size());
  bool checked = false;
  for (size_t i : order) {
    results[i] = run_one(q, configs[i], progress, check_interrupted, checked ? nullptr : std::function<void(const ModelConfig&)>(check_memory));
    checked = true;
  }
  if (json)
    for (const BenchResult& r : results) std::cout << to_json(r).dump() << std::endl;
  else
    print_table(results, stdout);
  return 0;
}

}  // namespace sdgen::cli
