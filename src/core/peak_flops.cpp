#include "core/peak_flops.h"

#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace sdgen {

namespace {

struct GpuEntry {
  const char* match;   // substring of the device name; the first matching entry wins
  const char* label;
  double fp16_tflops, fp32_tflops;
  bool bf16_tensor_cores;  // Ampere and later; on Volta and Turing bf16 computes at the fp32 rate
};

// Vendor datasheet dense figures (no sparsity): fp16 tensor-core math with fp32 accumulation, and
// plain fp32 (CUDA cores, no TF32). More specific names come before the ones they contain.
const GpuEntry kGpus[] = {
    {"H100 PCIe", "H100 PCIe", 756, 51, true},
    {"H100", "H100 SXM", 989, 67, true},
    {"H200", "H200 SXM", 989, 67, true},
    {"A100", "A100 SXM", 312, 19.5, true},
    {"L40S", "L40S", 362, 91.6, true},
    {"L4", "L4", 121, 30.3, true},
    {"A10", "A10", 125, 31.2, true},
    {"V100", "V100 SXM2", 125, 15.7, false},
    {"T4", "T4", 65, 8.1, false},
};

std::string cpuinfo_field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t first = line.find_first_not_of(" \t", colon + 1);
    return first == std::string::npos ? std::string() : line.substr(first);
  }
  return {};
}

bool has_flag(const std::string& flags, const char* flag) {
  return (" " + flags + " ").find(std::string(" ") + flag + " ") != std::string::npos;
}

int cores_available() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  const unsigned n = std::thread::hardware_concurrency();
  return n ? (int)n : 1;
}

}  // namespace

std::optional<PeakFlops> gpu_peak_flops(const std::string& device_name) {
  for (const GpuEntry& g : kGpus) {
    if (device_name.find(g.match) == std::string::npos) continue;
    char how[160];
    std::snprintf(how, sizeof how, "%s: %g / %g / %g TFLOP/s fp16 / bf16 / fp32 dense (vendor datasheet)",
                  g.label, g.fp16_tflops, g.bf16_tensor_cores ? g.fp16_tflops : g.fp32_tflops, g.fp32_tflops);
    return PeakFlops{g.fp32_tflops * 1e12, g.fp16_tflops * 1e12,
                     (g.bf16_tensor_cores ? g.fp16_tflops : g.fp32_tflops) * 1e12, how};
  }
  return std::nullopt;
}

PeakFlops cpu_peak_flops() {
  std::ifstream f("/proc/cpuinfo");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string info = ss.str();
  // The clock: the highest the kernel lists (cpufreq), else /proc/cpuinfo's "cpu MHz" (in a VM,
  // typically the host's nominal clock; boost can exceed it).
  double mhz = 0;
  std::string clock_from;
  if (std::ifstream mf("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"); mf >> mhz) {
    mhz /= 1000.0;
    clock_from = "cpufreq max";
  } else {
    mhz = std::atof(cpuinfo_field(info, "cpu MHz").c_str());
    clock_from = "/proc/cpuinfo cpu MHz";
  }
  if (mhz <= 0) mhz = 1000, clock_from = "unknown, assumed";
  return cpu_peak_flops_of(info, cores_available(), mhz, clock_from);
}

PeakFlops cpu_peak_flops_of(const std::string& cpuinfo, int cores, double mhz, const std::string& clock_from) {
  const std::string flags = cpuinfo_field(cpuinfo, "flags");
  std::string model = cpuinfo_field(cpuinfo, "model name");
  if (model.empty()) model = "unknown CPU";

  const bool avx512 = has_flag(flags, "avx512f"), avx2 = has_flag(flags, "avx2") || has_flag(flags, "avx");
  const bool fma = has_flag(flags, "fma");
  const int lanes = avx512 ? 16 : avx2 ? 8 : 4;
  // Two vector FMA pipes per core, as on every x86 server core since Haswell / Zen. An upper
  // bound, as a peak must be: Zen 4 (AMD family 25) runs a 512-bit FMA on both of its 256-bit
  // pipes, so it reaches half of this per clock, but boosts above the nominal clock that
  // /proc/cpuinfo shows in a VM, so a count of one pipe can be exceeded in practice.
  const int pipes = 2;
  const int flop_per_lane = fma ? 2 : 1;
  const double peak = (double)cores * lanes * flop_per_lane * pipes * mhz * 1e6;
  // AMX: one TDPBF16PS (16 x 16 outputs x 32 products, 2 FLOPs each) per 16 cycles and core.
  const bool amx_bf16 = has_flag(flags, "amx_bf16"), avx512_bf16 = has_flag(flags, "avx512_bf16");
  const double bf16_peak = amx_bf16 ? (double)cores * 1024 * mhz * 1e6 : avx512_bf16 ? 2 * peak : peak;
  char how[480];
  std::snprintf(how, sizeof how,
                "%s: %d CPUs x %d fp32 lanes (%s) x %d (%s) x %d pipe%s x %.0f MHz (%s) = %.1f GFLOP/s; "
                "fp16 computes in fp32; bf16 %.1f GFLOP/s (%s)",
                model.c_str(), cores, lanes, avx512 ? "AVX-512" : avx2 ? "AVX2" : "SSE", flop_per_lane,
                fma ? "FMA" : "no FMA", pipes, pipes == 1 ? "" : "s", mhz, clock_from.c_str(), peak / 1e9,
                bf16_peak / 1e9,
                amx_bf16      ? "AMX-BF16: 1024 FLOP per cycle and CPU"
                : avx512_bf16 ? "AVX512-BF16: 2 x the fp32 rate"
                              : "no bf16 dot products: the fp32 rate");
  return PeakFlops{peak, peak, bf16_peak, how};
}

}  // namespace sdgen
