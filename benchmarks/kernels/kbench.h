// Shared by the kernel benchmarks of benchmarks/kernels/ (one program per kernel family, each
// version of the family run through its launcher of kernels/kernels.h on device memory): inputs
// on the device, validation against the plain CPU backend with the op table's tolerances
// (tests/op_cases.h), CUDA-event timing and the report line (time, GB/s or TFLOP/s, fraction of
// the device's peak). In the emulated build (SDGEN_SIMT) the programs validate only, at small
// shapes, and print "timing: needs a GPU".
//   Options: --small (the emulator's shapes, the default there), --full (the SD v1.5 shapes, the
//   default on a GPU), --repeats N (timed launches after the warm-up, default 20).
#pragma once
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/check.h"
#include "op_cases.h"
#include "sdgen/backend.h"
#include "sdgen/half.h"
#include "sdgen/tensor.h"

namespace kbench {

using namespace sdgen;

#if defined(SDGEN_SIMT)
inline constexpr bool kEmulated = true;
#else
inline constexpr bool kEmulated = false;
#endif

struct Options {
  bool small = kEmulated;
  int warmup = 3;
  int repeats = 20;
};

inline Options parse(int argc, char** argv, const char* usage) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--small")) o.small = true;
    else if (!std::strcmp(argv[i], "--full")) o.small = false;
    else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) o.repeats = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--small | --full] [--repeats N]\n%s\n", argv[0], usage);
      std::exit(2);
    }
  }
  return o;
}

// The device's peaks: memory bandwidth from its memory clock × bus width (DDR: two transfers per
// clock), tensor-core fp16 and CUDA-core fp32 dense TFLOP/s from a table by name (0: unknown).
struct Peak {
  std::string name;
  double gbs = 0, tflops_f16 = 0, tflops_f32 = 0;
};

inline Peak device_peak() {
  Peak p;
  if (kEmulated) return p;
  int dev = 0;
  SDGEN_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  SDGEN_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  p.name = prop.name;
  // The memory clock (kHz) is an attribute since CUDA 13 took it out of cudaDeviceProp.
  int clock_khz = 0;
  SDGEN_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev));
  p.gbs = 2.0 * clock_khz * 1e3 * (prop.memoryBusWidth / 8.0) / 1e9;
  // Dense (no sparsity) SXM figures; H200 has H100's SMs.
  if (p.name.find("H100") != std::string::npos || p.name.find("H200") != std::string::npos)
    p.tflops_f16 = 989, p.tflops_f32 = 67;
  else if (p.name.find("A100") != std::string::npos)
    p.tflops_f16 = 312, p.tflops_f32 = 19.5;
  return p;
}

// Device memory for `values` in `dt`, starting `offset` elements past a 256-byte-aligned
// allocation (offset 1 makes the pointer misaligned for 16-byte accesses). free() it with
// kbench::release.
struct DeviceArray {
  void* base = nullptr;
  void* ptr = nullptr;
  int64_t n = 0;
  DType dt = DType::F32;
};

inline DeviceArray device_array(int64_t n, DType dt, int offset = 0) {
  DeviceArray a;
  a.n = n, a.dt = dt;
  const size_t es = dtype_size(dt);
  SDGEN_CUDA_CHECK(cudaMalloc(&a.base, (size_t)(n + offset) * es + 16));
  a.ptr = static_cast<char*>(a.base) + (size_t)offset * es;
  SDGEN_CUDA_CHECK(cudaMemset(a.base, 0, (size_t)(n + offset) * es + 16));
  return a;
}

inline DeviceArray upload(const std::vector<float>& v, DType dt, int offset = 0) {
  DeviceArray a = device_array((int64_t)v.size(), dt, offset);
  if (dt == DType::F16) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half_bits(v[i]);
    SDGEN_CUDA_CHECK(cudaMemcpy(a.ptr, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
  } else {
    SDGEN_CUDA_CHECK(cudaMemcpy(a.ptr, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  }
  return a;
}

inline std::vector<float> download(const DeviceArray& a) {
  SDGEN_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> v((size_t)a.n);
  if (a.dt == DType::F16) {
    std::vector<uint16_t> h(v.size());
    SDGEN_CUDA_CHECK(cudaMemcpy(h.data(), a.ptr, h.size() * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < v.size(); ++i) v[i] = half_bits_to_float(h[i]);
  } else {
    SDGEN_CUDA_CHECK(cudaMemcpy(v.data(), a.ptr, v.size() * 4, cudaMemcpyDeviceToHost));
  }
  return v;
}

inline void release(DeviceArray& a) {
  if (a.base) SDGEN_CUDA_CHECK(cudaFree(a.base));
  a = DeviceArray{};
}

// Random N(mean, stddev²) values (the op table's generator and seeds), rounded to fp16 when the
// run is fp16 so that the reference sees exactly what the device sees.
inline std::vector<float> random_values(const Shape& shape, uint32_t index, DType dt, float stddev = 1.0f,
                                        float mean = 0.0f) {
  std::vector<float> v = optest::make_values(optest::Input{shape, stddev, mean}, 1234u + 7919u * index);
  if (dt == DType::F16)
    for (float& x : v) x = round_to_half(x);
  return v;
}

// The plain CPU backend (fp32 storage, double accumulators): the truth.
inline Backend& reference() {
  static std::unique_ptr<Backend> be = make_cpu_backend(true);
  return *be;
}

// Mean milliseconds per call of `launch` over opt.repeats calls after opt.warmup, by CUDA events
// on the default stream (where the benchmarks launch); -1 in the emulated build.
inline double time_ms(const Options& opt, const std::function<void()>& launch) {
  if (kEmulated) return -1;
  for (int i = 0; i < opt.warmup; ++i) launch();
  cudaEvent_t start, stop;
  SDGEN_CUDA_CHECK(cudaEventCreate(&start));
  SDGEN_CUDA_CHECK(cudaEventCreate(&stop));
  SDGEN_CUDA_CHECK(cudaEventRecord(start, 0));
  for (int i = 0; i < opt.repeats; ++i) launch();
  SDGEN_CUDA_CHECK(cudaEventRecord(stop, 0));
  SDGEN_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  SDGEN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  SDGEN_CUDA_CHECK(cudaEventDestroy(start));
  SDGEN_CUDA_CHECK(cudaEventDestroy(stop));
  return ms / opt.repeats;
}

// What a measurement is divided by: bytes the kernel must move (-> GB/s against the bandwidth
// peak) or FLOPs (-> TFLOP/s against the fp16 tensor-core or the fp32 peak).
enum class Rate { kBandwidth, kTflopsF16, kTflopsF32 };

// Compares `out` with `ref` (ref rounded to fp16 first for an fp16 run, as the op table does),
// prints one line (case, version, dtype, errors, PASS/FAIL, then the timing or "timing: needs a
// GPU"), returns whether it passed.
inline bool report(const std::string& name, const std::string& version, DType dt, const std::vector<float>& out,
                   std::vector<float> ref, const optest::Tolerances& tols, double ms, double work, Rate rate,
                   const Peak& peak) {
  if (dt == DType::F16)
    for (float& v : ref) v = round_to_half(v);
  const optest::Tolerance& tol = dt == DType::F32 ? tols.f32 : tols.f16;
  const optest::Comparison c = optest::compare(out, ref, tol);
  const bool pass = c.shape_ok && c.special_mismatch == 0 && c.nmse <= tol.nmse && c.worst <= 1.0;
  std::printf("%-34s %-7s %s  max_err %.3g nmse %.2g err/bound %.3f %s", name.c_str(), version.c_str(),
              dtype_name(dt), c.max_abs, c.nmse, c.worst, pass ? "PASS" : "FAIL");
  if (ms < 0) {
    std::printf("  timing: needs a GPU\n");
  } else if (rate == Rate::kBandwidth) {
    const double gbs = work / (ms * 1e-3) / 1e9;
    std::printf("  %9.4f ms %8.1f GB/s", ms, gbs);
    if (peak.gbs > 0) std::printf(" %5.1f%% of %.0f GB/s\n", 100 * gbs / peak.gbs, peak.gbs);
    else std::printf(" (peak unknown)\n");
  } else {
    const double tf = work / (ms * 1e-3) / 1e12;
    const double top = rate == Rate::kTflopsF16 ? peak.tflops_f16 : peak.tflops_f32;
    std::printf("  %9.4f ms %7.2f TFLOP/s", ms, tf);
    if (top > 0) std::printf(" %5.1f%% of %.1f (%s)\n", 100 * tf / top, top, rate == Rate::kTflopsF16 ? "fp16 mma" : "fp32");
    else std::printf(" (peak unknown for %s)\n", peak.name.c_str());
  }
  std::fflush(stdout);
  return pass;
}

inline void print_device(const Peak& peak) {
  if (kEmulated) {
    std::printf("device: SIMT emulator (validation only)\n");
    return;
  }
  std::printf("device: %s, %.0f GB/s peak memory bandwidth", peak.name.c_str(), peak.gbs);
  if (peak.tflops_f16 > 0) std::printf(", %.1f fp16 mma / %.1f fp32 TFLOP/s\n", peak.tflops_f16, peak.tflops_f32);
  else std::printf(", TFLOP/s peak unknown\n");
}

}  // namespace kbench
