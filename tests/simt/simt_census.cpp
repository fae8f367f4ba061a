#include "simt_census.h"

#include <algorithm>
#include <mutex>

namespace simt {
namespace census {

namespace {

// Assumptions of the estimate (simt_census.h): fixed, so figures compare across commits.
constexpr double kFlopEfficiency = 0.60, kByteEfficiency = 0.70;
constexpr double kLaunchS = 4e-6, kGraphLaunchS = 1e-6, kSyncS = 10e-6, kAllocS = 50e-6;

struct State {
  std::mutex mu;
  bool on = false, dry = false;
  std::string phase;
  std::map<std::string, Phase> phases;
  double live = 0;
  double next_bytes = 0, next_flops = 0;
  std::map<std::string, std::pair<std::string, bool>> kernel_class;  // set_kernel_class
};
State& st() {
  static State s;
  return s;
}

// Calls `f` on the run's tally and on the current phase's.
template <class F>
void each(State& s, F f) {
  auto visit = [&](Phase& p) {
    if (p.estimate_s.empty()) p.estimate_s.assign(gpus().size(), 0.0);
    f(p);
  };
  visit(s.phases["run"]);
  if (!s.phase.empty()) visit(s.phases[s.phase]);
}

void add_time(Phase& p, double flops, double bytes, bool fp16, double overhead) {
  for (size_t g = 0; g < gpus().size(); ++g) {
    const Gpu& gpu = gpus()[g];
    const double peak = fp16 ? gpu.fp16_flops : gpu.fp32_flops;
    p.estimate_s[g] += std::max(flops / (kFlopEfficiency * peak), bytes / (kByteEfficiency * gpu.bytes_per_s)) + overhead;
  }
}

}  // namespace

const std::vector<Gpu>& gpus() {
  // Dense (no sparsity) peaks from NVIDIA's data sheets; fp32 is the CUDA-core rate (no TF32).
  static const std::vector<Gpu> g = {
      {"H100 SXM", 989e12, 67e12, 3.35e12},
      {"A100 SXM", 312e12, 19.5e12, 2.0e12},
      {"T4", 65e12, 8.1e12, 320e9},
  };
  return g;
}

void enable(bool on) { st().on = on; }
bool enabled() { return st().on; }
void set_dry(bool dry) { st().dry = dry; }
bool dry() { return st().dry; }

void set_phase(const std::string& name) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  s.phase = name;
  if (!s.on || name.empty()) return;
  Phase& p = s.phases[name];
  if (p.estimate_s.empty()) p.estimate_s.assign(gpus().size(), 0.0);
  p.peak_device_bytes = std::max(p.peak_device_bytes, s.live);
}

const std::map<std::string, Phase>& phases() { return st().phases; }

void reset() {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  s.phases.clear();
}


void set_kernel_class(const std::string& kernel, const char* cls, bool tensor_cores) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  s.kernel_class[kernel] = {cls, tensor_cores};
}

void note_next_launch(double bytes, double flops) {
  st().next_bytes = bytes;
  st().next_flops = flops;
}

void on_alloc(double bytes) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  s.live += bytes;
  if (!s.on) return;
  each(s, [&](Phase& p) {
    ++p.allocs;
    p.alloc_bytes += bytes;
    p.largest_buffer_bytes = std::max(p.largest_buffer_bytes, bytes);
    p.peak_device_bytes = std::max(p.peak_device_bytes, s.live);
    for (double& e : p.estimate_s) e += kAllocS;
  });
}

void on_free(double bytes) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  s.live -= bytes;
  if (!s.on) return;
  each(s, [&](Phase& p) {
    ++p.frees;
    p.free_bytes += bytes;
  });
}

void on_copy(Copy kind, double bytes) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.on || kind == Copy::kH2H) return;
  each(s, [&](Phase& p) {
    if (kind == Copy::kH2D) ++p.h2d, p.h2d_bytes += bytes;
    if (kind == Copy::kD2H) ++p.d2h, p.d2h_bytes += bytes;
    if (kind == Copy::kD2D) ++p.d2d, p.d2d_bytes += bytes, p.bytes += 2 * bytes;
    // Host transfers at PCIe-like rates are not in the roofline; their syncs and launches are.
    add_time(p, 0, kind == Copy::kD2D ? 2 * bytes : 0, false, kLaunchS);
  });
}

void on_sync(const char* call) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.on) return;
  each(s, [&](Phase& p) {
    ++p.syncs;
    ++p.sync_calls[call];
    for (double& e : p.estimate_s) e += kSyncS;
  });
}

std::pair<double, double> take_note() {
  State& s = st();
  std::pair<double, double> r{s.next_bytes, s.next_flops};
  s.next_bytes = s.next_flops = 0;
  return r;
}

void on_launch(const char* kernel, bool in_graph, double bytes, double flops) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.on) return;
  const auto cls = s.kernel_class.find(kernel);
  const bool attention = cls != s.kernel_class.end() && cls->second.first == "attention";
  const bool tensor_cores = cls != s.kernel_class.end() && cls->second.second;
  each(s, [&](Phase& p) {
    ++(in_graph ? p.graph_kernels : p.launches);
    KernelStat& k = p.kernels[kernel];
    ++k.launches;
    k.bytes += bytes;
    k.flops += flops;
    p.bytes += bytes;
    (attention ? p.flops_attention : p.flops_other) += flops;
    add_time(p, flops, bytes, tensor_cores, in_graph ? kGraphLaunchS : kLaunchS);
  });
}

void on_graph_launch() {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.on) return;
  each(s, [&](Phase& p) {
    ++p.graph_launches;
    for (double& e : p.estimate_s) e += kLaunchS;
  });
}

void on_capture() {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.on) return;
  each(s, [&](Phase& p) { ++p.captures; });
}

void on_setup_in_capture(const char* call) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.on) return;
  each(s, [&](Phase& p) { ++p.setup_in_capture[call]; });
}

void on_library(const char* call, double flops, double bytes, bool fp16, bool in_graph) {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.on) return;
  each(s, [&](Phase& p) {
    ++p.library_calls[call];
    if (std::string(call).find("onvolution") != std::string::npos) p.flops_conv += flops;
    else p.flops_gemm += flops;
    p.bytes += bytes;
    add_time(p, flops, bytes, fp16, in_graph ? kGraphLaunchS : kLaunchS);
  });
}

}  // namespace census
}  // namespace simt
