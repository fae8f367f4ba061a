// Op perf mode: every case of the op table (tests/op_cases.h, then its benchmark-only rows of
// tests/op_work.h) timed on one backend, so each kernel family has its benchmark from the same case
// table that its correctness tests use (ggml test-backend-ops' perf mode, llm.c's dev/cuda).
// Per case and dtype it prints the work (FLOPs, bytes moved: optest::work_of), the median time of
// --repeats runs after --warmup runs, GFLOP/s, GB/s and the fraction of the backend's peak
// (FLOPs: core/peak_flops; GPU memory bandwidth: memory clock × bus width, both DDR edges).
// Correctness is the test suites' business (sdgen_tests OpsTable, simt_tests / cuda_ops_tests
// CudaOps); this program times, and checks only when asked (--check).
//   Programs: op_perf (the CPU fast path), op_perf_gpu (the CUDA backend on a real GPU, each
//   run timed with CUDA events on the backend's stream: op launch to op end, including the
//   output's allocation from the pool), op_perf_emu (the CUDA backend in the SIMT emulator: every
//   case once through the same path, times marked as emulated and not reported: they measure
//   the emulator, not a kernel).
//   Usage: op_perf [--filter A,B,...] [--dtype f32|f16|bf16|all] [--warmup N] [--repeats N] [--check]
//                  [--json]
//   --filter keeps cases whose name contains one of the comma-separated strings; --check also
//   compares each case's output with the plain CPU backend under the table's tolerances (what the
//   suites assert, here also for the benchmark-only rows; the plain reference of the largest rows
//   takes tens of seconds); --json prints one JSON object per case and dtype instead of the
//   table. Default dtypes fp32 and fp16 (all: bf16 too). A 16-bit dtype runs where the backend
//   supports the op in it; a case the table runs in fp32 only (fp16 off) and that fails in 16 bits
//   is shown as n/a; any other failure exits 1.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/peak_flops.h"
#include "op_work.h"
#include "sdgen/backend.h"

#if defined(SDGEN_OP_PERF_CUDA)
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_backend.h"
#include "common/check.h"
#endif

using namespace sdgen;

namespace {

#if defined(SDGEN_SIMT)
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

struct Options {
  std::vector<std::string> filters;
  std::vector<DType> dtypes = {DType::F32, DType::F16};
  int warmup = 2, repeats = 10;
  bool json = false, check = false;
};

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--filter A,B,...] [--dtype f32|f16|bf16|all] [--warmup N] [--repeats N] [--check] [--json]\n",
               argv0);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--json") {
      o.json = true;
    } else if (a == "--check") {
      o.check = true;
    } else if (a == "--filter" && has_value) {
      std::string list = argv[++i];
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        if (comma > start) o.filters.push_back(list.substr(start, comma - start));
        start = comma + 1;
      }
    } else if (a == "--dtype" && has_value) {
      const std::string d = argv[++i];
      if (d == "f32" || d == "fp32") o.dtypes = {DType::F32};
      else if (d == "f16" || d == "fp16") o.dtypes = {DType::F16};
      else if (d == "bf16") o.dtypes = {DType::BF16};
      else if (d == "all") o.dtypes = {DType::F32, DType::F16, DType::BF16};
      else usage(argv[0]);
    } else if (a == "--warmup" && has_value) {
      o.warmup = std::max(0, std::atoi(argv[++i]));
    } else if (a == "--repeats" && has_value) {
      o.repeats = std::max(1, std::atoi(argv[++i]));
    } else {
      usage(argv[0]);
    }
  }
  return o;
}

bool selected(const Options& o, const std::string& name) {
  if (o.filters.empty()) return true;
  for (const std::string& f : o.filters)
    if (name.find(f) != std::string::npos) return true;
  return false;
}

// The denominators of "fraction of peak": FLOP/s per dtype and memory bytes/s (0: unknown).
struct Peak {
  std::string device;
  PeakFlops flops;
  double bandwidth = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#if defined(SDGEN_OP_PERF_CUDA)
Peak cuda_peak() {
  Peak p;
  if (kEmulated) {
    p.device = "CUDA backend in the SIMT emulator (times not reported)";
    return p;
  }
  int dev = 0;
  SDGEN_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  SDGEN_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  p.device = prop.name;
  if (auto f = gpu_peak_flops(prop.name)) p.flops = *f;
  // The memory clock (kHz) is a device attribute (CUDA 13 took it out of cudaDeviceProp).
  int clock_khz = 0;
  SDGEN_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev));
  p.bandwidth = 2.0 * clock_khz * 1e3 * (prop.memoryBusWidth / 8.0);
  return p;
}

// Milliseconds of each run, by a pair of CUDA events around it on the backend's stream (the
// stream every kernel, library call and copy of the backend goes to).
std::vector<double> time_cuda(Backend& b, const optest::OpCase& c, const std::vector<Tensor>& in, DType dt,
                              const Options& o) {
  cudaStream_t stream = dynamic_cast<cuda::CudaBackend&>(b).stream();
  for (int i = 0; i < o.warmup; ++i) c.run(b, in, dt);
  std::vector<cudaEvent_t> ev(2 * (size_t)o.repeats);
  for (cudaEvent_t& e : ev) SDGEN_CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < o.repeats; ++i) {
    SDGEN_CUDA_CHECK(cudaEventRecord(ev[2 * i], stream));
    c.run(b, in, dt);
    SDGEN_CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], stream));
  }
  SDGEN_CUDA_CHECK(cudaEventSynchronize(ev.back()));
  std::vector<double> ms((size_t)o.repeats);
  for (int i = 0; i < o.repeats; ++i) {
    float t = 0;
    SDGEN_CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
    ms[i] = t;
  }
  for (cudaEvent_t& e : ev) SDGEN_CUDA_CHECK(cudaEventDestroy(e));
  return ms;
}
#endif

// Milliseconds of each run by the host clock (the CPU backend returns when the op is done).
std::vector<double> time_cpu(Backend& b, const optest::OpCase& c, const std::vector<Tensor>& in, DType dt,
                             const Options& o) {
  for (int i = 0; i < o.warmup; ++i) c.run(b, in, dt);
  std::vector<double> ms;
  for (int i = 0; i < o.repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c.run(b, in, dt);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms;
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') r += '\\';
    r += (ch == '\n' || ch == '\t') ? ' ' : ch;
  }
  return r;
}

struct Row {
  std::string name, status;  // "ok" (timed), "pass" / "FAIL" (--check), "n/a: ...", "error: ...", "emulated..."
  DType dt;
  optest::Work work;
  double ms = -1;
  double err_bound = -1;  // --check: the worst element's error over its bound (≤ 1 passes)
};

void print_row(const Row& r, const Peak& peak, const Options& o, const char* backend) {
  const double s = r.ms * 1e-3;
  const double flops_s = r.ms > 0 ? r.work.flops / s : 0, bytes_s = r.ms > 0 ? r.work.bytes / s : 0;
  const double top = peak.flops.for_precision(r.dt);
  const double flop_frac = top > 0 && r.ms > 0 ? flops_s / top : -1;
  const double bw_frac = peak.bandwidth > 0 && r.ms > 0 ? bytes_s / peak.bandwidth : -1;
  if (o.json) {
    std::printf("{\"case\": \"%s\", \"backend\": \"%s\", \"dtype\": \"%s\", \"status\": \"%s\", \"flops\": %.0f, "
                "\"bytes\": %.0f",
                r.name.c_str(), backend, dtype_name(r.dt), json_escape(r.status).c_str(), r.work.flops, r.work.bytes);
    if (r.ms > 0) {
      std::printf(", \"median_ms\": %.6g, \"repeats\": %d, \"gflop_s\": %.6g, \"gb_s\": %.6g", r.ms, o.repeats,
                  flops_s / 1e9, bytes_s / 1e9);
      if (flop_frac >= 0) std::printf(", \"flop_peak_fraction\": %.4g", flop_frac);
      if (bw_frac >= 0) std::printf(", \"bandwidth_peak_fraction\": %.4g", bw_frac);
    }
    if (r.err_bound >= 0) std::printf(", \"err_over_bound\": %.4g", r.err_bound);
    std::printf("}\n");
  } else if (r.ms > 0) {
    std::printf("%-40s %-5s %10.4g %10.4g %11.4f %10.2f %9.2f", r.name.c_str(), dtype_name(r.dt), r.work.flops / 1e9,
                r.work.bytes / 1e6, r.ms, flops_s / 1e9, bytes_s / 1e9);
    if (flop_frac >= 0) std::printf(" %6.1f", 100 * flop_frac); else std::printf(" %6s", "-");
    if (bw_frac >= 0) std::printf(" %6.1f", 100 * bw_frac); else std::printf(" %6s", "-");
    if (r.err_bound >= 0) std::printf("  %s err/bound %.3g", r.status.c_str(), r.err_bound);
    else if (r.status != "ok") std::printf("  %s", r.status.c_str());
    std::printf("\n");
  } else if (r.err_bound >= 0) {
    std::printf("%-40s %-5s %10.4g %10.4g  %s err/bound %.3g\n", r.name.c_str(), dtype_name(r.dt),
                r.work.flops / 1e9, r.work.bytes / 1e6, r.status.c_str(), r.err_bound);
  } else {
    std::printf("%-40s %-5s %10.4g %10.4g  %s\n", r.name.c_str(), dtype_name(r.dt), r.work.flops / 1e9,
                r.work.bytes / 1e6, r.status.c_str());
  }
  std::fflush(stdout);
}

int run(const Options& o) {
  // --check compares as the suites do, guard bytes included: every device allocation made from
  // here on carries them (only then, as they are no part of what is timed).
  if (o.check) set_device_guard_bytes(true);
#if defined(SDGEN_OP_PERF_CUDA)
  const char* backend_name = "cuda";
  std::unique_ptr<Backend> backend = make_cuda_backend();
  const Peak peak = cuda_peak();
#else
  const char* backend_name = "cpu";
  std::unique_ptr<Backend> backend = make_cpu_backend(false);
  const Peak peak{"CPU fast path", cpu_peak_flops(), 0};
#endif
  if (!o.json) {
    std::printf("backend: %s; device: %s", backend_name, peak.device.c_str());
    if (!peak.flops.how.empty()) std::printf("; peak: %s", peak.flops.how.c_str());
    if (peak.bandwidth > 0) std::printf("; memory %.0f GB/s (clock x bus width)", peak.bandwidth / 1e9);
    std::printf("\nwork: FLOPs and bytes of one run (tests/op_work.h work_of); time: median of %d after %d warm-up\n",
                o.repeats, o.warmup);
    std::printf("%-40s %-5s %10s %10s %11s %10s %9s %6s %6s\n", "case", "type", "GFLOP", "MB", "median ms",
                "GFLOP/s", "GB/s", "%flop", "%bw");
  }
  const std::unique_ptr<Backend> plain = make_cpu_backend(true);  // --check's reference
  std::vector<const optest::OpCase*> cases;
  for (const optest::OpCase& c : optest::op_cases()) cases.push_back(&c);
  for (const optest::OpCase& c : optest::perf_cases()) cases.push_back(&c);
  int failures = 0, ran = 0;
  for (const optest::OpCase* c : cases) {
    if (!selected(o, c->name)) continue;
    for (DType dt : o.dtypes) {
      Row r{c->name, "ok", dt, {}, -1};
      if (!backend->supports(c->op, dt) || (c->casts_bf16 && !backend->supports(Op::kCast, DType::BF16))) {
        r.status = "n/a: not on this backend";
        print_row(r, peak, o, backend_name);
        continue;
      }
      try {
        const std::vector<Tensor> in = optest::make_inputs(*c, dt, backend->device());
        const Tensor out = c->run(*backend, in, dt);
        r.work = optest::work_of(*c, in, out);
        std::vector<double> ms;
#if defined(SDGEN_OP_PERF_CUDA)
        if (kEmulated) r.status = "emulated: time not reported";
        else ms = time_cuda(*backend, *c, in, dt, o);
#else
        ms = time_cpu(*backend, *c, in, dt, o);
#endif
        if (!ms.empty()) r.ms = median(ms);
        // The table's fp32-only rows (fp16 off) have no fp16 expectation (a cast's output is fp32
        // by construction), so they are timed in fp16 but not checked.
        if (o.check && is_half_dtype(dt) && !c->fp16) {
          r.status += "; unchecked: the table's fp16 pass is off";
        } else if (o.check) {
          const optest::CaseResult cr = optest::run_case(*c, *backend, *plain, dt);
          const optest::Comparison& m = cr.cmp;
          const bool pass = m.shape_ok && cr.guard_intact && m.special_mismatch == 0 && m.nmse <= cr.tol.nmse &&
                            m.worst <= 1.0;
          r.err_bound = m.worst;
          if (!pass) {
            r.status = "FAIL";
            ++failures;
          } else {
            r.status = r.status == "ok" ? "pass" : r.status + "; check pass";
          }
        }
        ++ran;
      } catch (const std::exception& e) {
        // The table's fp32-only rows may not take fp16 inputs (casts, sampler steps).
        const bool expected = is_half_dtype(dt) && !c->fp16;
        r.status = std::string(expected ? "n/a: " : "error: ") + e.what();
        if (!expected) ++failures;
      }
      print_row(r, peak, o, backend_name);
    }
  }
  if (!o.json) std::printf("op_perf: %d cases run, %d failed\n", ran, failures);
  if (ran == 0 && failures == 0) {
    std::fprintf(stderr, "op_perf: no case matched\n");
    return 1;
  }
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {  // no device, out of memory: say so, not abort
    std::fprintf(stderr, "op_perf: %s\n", e.what());
    return 1;
  }
}
