// sd-gen bench: the generation workload timed per configuration (precision × CUDA graphs), with
// per-stage times, weight load time, peak memory and MFU; a table on stdout or, with --json, one
// JSON object per configuration. bench.cpp runs it, bench_report.cpp prints it.
#pragma once
#include <cstddef>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sdgen/tensor.h"

namespace sdgen::cli {

struct BenchConfig {
  DType precision = DType::F32;
  std::optional<bool> cuda_graphs;  // on CUDA: replay the recorded step; none on the CPU
};

struct Stats {
  double median = 0, min = 0, max = 0;
};
// Median (mean of the two middle samples for an even count), min and max. Empty: all zero.
Stats stats_of(std::vector<double> samples);

struct BenchResult {
  BenchConfig config;
  Device device = Device::CPU;
  std::string device_name;  // the backend's name, e.g. "cpu", "cuda (NVIDIA H100 80GB HBM3)"
  std::string model;
  int batch = 0, steps = 0, width = 0, height = 0, repeats = 0;
  float guidance = 0;
  // Per timed repeat.
  Stats total_s, text_s, unet_per_step_s, vae_s, images_per_s, mfu;
  double weight_load_s = 0;                // the Pipeline's construction, once per configuration
  size_t peak_rss_bytes = 0;               // VmHWM of this process during the configuration
  std::optional<size_t> peak_device_bytes;  // CUDA only
  // Analytic work (src/pipeline/flops.h).
  double clip_flop = 0, unet_flop_per_step = 0, vae_flop = 0, total_flop = 0;
  std::optional<double> peak_flop_per_s;  // for this precision; none for a GPU not in the table
  std::string peak_source;
};

nlohmann::json to_json(const BenchResult& r);
void print_table(const std::vector<BenchResult>& results, std::FILE* out);

// `sd-gen bench ...`: argv[0] is "bench". Throws sdgen::Error (usage, model, runtime); polls
// check_interrupted between steps.
int run_bench(int argc, char** argv, const std::function<void()>& check_interrupted);

}  // namespace sdgen::cli
