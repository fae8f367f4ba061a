// sd-gen bench's output (bench.h): one JSON object per configuration, field names carrying their
// units, device-only figures null on the CPU; or a table for people.
#include <algorithm>
#include <cstdio>
#include <string>

#include <omp.h>

#include "backend/cpu/blas_kernels.h"
#include "backend/cpu/cpu_backend.h"
#include "cli/bench.h"

namespace sdgen::cli {

namespace {

nlohmann::json stats_json(const Stats& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

template <class T>
nlohmann::json or_null(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}

std::string precision_label(const BenchConfig& c) {
  std::string s = dtype_name(c.precision);
  if (c.cuda_graphs) s += *c.cuda_graphs ? ", graphs" : ", no graphs";
  return s;
}

// "1.23" or, with several repeats, "1.23 (1.20-1.31)".
std::string cell(const Stats& s, int repeats, const char* fmt) {
  char a[32], b[32], c[32];
  std::snprintf(a, sizeof a, fmt, s.median);
  if (repeats <= 1) return a;
  std::snprintf(b, sizeof b, fmt, s.min);
  std::snprintf(c, sizeof c, fmt, s.max);
  return std::string(a) + " (" + b + "-" + c + ")";
}

}  // namespace

nlohmann::json to_json(const BenchResult& r) {
  const bool cpu = r.device == Device::CPU;
  nlohmann::json j;
  j["tool"] = "sd-gen";
  j["device"] = cpu ? "cpu" : "cuda";
  j["device_name"] = r.device_name;
  // The CPU and its GEMM kernels (also on CUDA runs: the text encoder's tokenizer and the host side).
  j["cpu"] = cpu_features().model_name;
  j["cpu_extensions"] = cpu_features().extensions();
  j["gemm_kernels"] = blas_description();
  j["bf16_gemm_kernels"] = cpu::bf16_gemm_description();
  j["threads"] = omp_get_max_threads();  // the CPU ops' team (OMP_NUM_THREADS)
  j["precision"] = dtype_name(r.config.precision);
  j["cuda_graphs"] = or_null(r.config.cuda_graphs);
  j["model"] = r.model;
  j["batch"] = r.batch;
  j["steps"] = r.steps;
  j["width"] = r.width;
  j["height"] = r.height;
  j["guidance"] = r.guidance;
  j["repeats"] = r.repeats;
  j["total_s"] = stats_json(r.total_s);
  j["text_s"] = stats_json(r.text_s);
  j["unet_per_step_s"] = stats_json(r.unet_per_step_s);
  j["vae_s"] = stats_json(r.vae_s);
  j["images_per_s"] = stats_json(r.images_per_s);
  j["weight_load_s"] = r.weight_load_s;
  // The headline memory figure: device memory on CUDA, the resident set on the CPU.
  j["peak_memory_bytes"] = cpu ? nlohmann::json(r.peak_rss_bytes) : or_null(r.peak_device_bytes);
  j["peak_memory_kind"] = cpu ? "resident_set" : "device";
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["peak_device_bytes"] = or_null(r.peak_device_bytes);
  j["clip_flop"] = r.clip_flop;
  j["unet_flop_per_step"] = r.unet_flop_per_step;
  j["vae_flop"] = r.vae_flop;
  j["total_flop"] = r.total_flop;
  j["peak_flop_per_s"] = or_null(r.peak_flop_per_s);
  j["peak_flop_per_s_source"] = r.peak_source;
  j["mfu"] = r.peak_flop_per_s ? stats_json(r.mfu) : nlohmann::json();
  return j;
}

void print_table(const std::vector<BenchResult>& results, std::FILE* out) {
  if (results.empty()) return;
  const BenchResult& f = results.front();
  std::fprintf(out, "sd-gen bench: %s on %s, batch %d x %d steps, %dx%d, guidance %g; %d timed run%s after 1 warm-up%s\n\n",
               f.model.c_str(), f.device_name.c_str(), f.batch, f.steps, f.width, f.height, f.guidance, f.repeats,
               f.repeats == 1 ? "" : "s", f.repeats > 1 ? " (median (min-max))" : "");
  const char* mem = f.device == Device::CPU ? "peak RSS GB" : "peak device GB";
  std::vector<std::vector<std::string>> rows = {
      {"config", "total s", "text s", "UNet s/step", "VAE s", "images/s", "load s", mem, "MFU"}};
  for (const BenchResult& r : results) {
    const double mem_bytes = r.device == Device::CPU ? (double)r.peak_rss_bytes
                                                      : (double)r.peak_device_bytes.value_or(0);
    char load[32], memb[32];
    std::snprintf(load, sizeof load, "%.2f", r.weight_load_s);
    std::snprintf(memb, sizeof memb, "%.2f", mem_bytes / 1e9);
    rows.push_back({precision_label(r.config), cell(r.total_s, r.repeats, "%.3f"), cell(r.text_s, r.repeats, "%.3f"),
                    cell(r.unet_per_step_s, r.repeats, "%.3f"), cell(r.vae_s, r.repeats, "%.3f"),
                    cell(r.images_per_s, r.repeats, "%.4f"), load, memb,
                    r.peak_flop_per_s ? cell(r.mfu, r.repeats, "%.3f") : "n/a"});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c)
      std::fprintf(out, "%-*s%s", c + 1 < row.size() ? (int)width[c] : 0, row[c].c_str(),
                   c + 1 < row.size() ? "  " : "\n");
  }
  std::fprintf(out, "\nwork (analytic, src/pipeline/flops.h): CLIP %.3g GFLOP, UNet %.4g TFLOP per step, VAE %.4g TFLOP, "
                    "total %.4g TFLOP\npeak: %s\n",
               f.clip_flop / 1e9, f.unet_flop_per_step / 1e12, f.vae_flop / 1e12, f.total_flop / 1e12,
               f.peak_source.c_str());
  std::fflush(out);
}

}  // namespace sdgen::cli
