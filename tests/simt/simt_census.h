// The census: what the CUDA backend's host code asks of the device, counted without a GPU. The
// runtime, cuBLAS and cuDNN twins and the kernel launcher report every call here; a dry run
// (set_dry(true)) records launches and library calls with their arguments but does not execute
// them and does not move bytes, so the full-size SD v1.5 graph is counted in seconds
// (benchmarks/cuda_census). Counts are attributed to the current phase (set_phase), which the
// pipeline names through sdgen::trace (src/core/trace.h).
//
// The time estimate is a roofline with fixed assumptions, so that figures stay comparable from
// commit to commit (they are not a prediction of any one GPU): each kernel or library call costs
// max(FLOPs at 60% of the dense peak for its precision, bytes at 70% of the memory bandwidth),
// plus 4 µs per launch outside a CUDA graph or 1 µs inside one; a synchronizing call adds 10 µs
// and a device allocation 50 µs.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace simt {

// CUDA graphs in the emulator (cuda_runtime_twin.cpp): between cudaStreamBeginCapture and
// cudaStreamEndCapture, kernel launches, library calls, copies and memsets are recorded as nodes
// (their arguments copied) instead of running; cudaGraphLaunch runs the nodes in order.
bool capturing();
bool replaying();  // inside cudaGraphLaunch
void capture(std::function<void()> node);
// For the twins' set-up calls (handles, heuristics, plan finalize): true, and counted in the
// census's setup_in_capture, when a stream is capturing; the twin then refuses the call.
bool setup_refused_in_capture(const char* call);

namespace census {

// The GPUs the estimate is made for: dense fp16 tensor-core peak, fp32 (no TF32) peak, bandwidth.
struct Gpu {
  const char* name;
  double fp16_flops, fp32_flops, bytes_per_s;
};
const std::vector<Gpu>& gpus();

struct KernelStat {
  uint64_t launches = 0;
  double bytes = 0, flops = 0;
};

struct Phase {
  uint64_t allocs = 0, frees = 0;
  double alloc_bytes = 0, free_bytes = 0;
  uint64_t h2d = 0, d2h = 0, d2d = 0;
  double h2d_bytes = 0, d2h_bytes = 0, d2d_bytes = 0;
  uint64_t syncs = 0;
  std::map<std::string, uint64_t> sync_calls;  // by call, implicit ones included
  uint64_t launches = 0;        // kernel launches issued by the host (not inside a graph)
  uint64_t graph_launches = 0;  // cudaGraphLaunch calls
  uint64_t graph_kernels = 0;   // kernels run inside graph replays
  uint64_t captures = 0;        // stream captures begun (cudaStreamBeginCapture)
  // Library set-up calls (handle creation, heuristics, plan finalize, version queries) made while
  // a stream was capturing: the twins refuse them, as a real library may ("operation not permitted
  // when stream is capturing"), and count them here.
  std::map<std::string, uint64_t> setup_in_capture;
  std::map<std::string, KernelStat> kernels;  // by kernel name
  std::map<std::string, uint64_t> library_calls;  // by function
  double flops_gemm = 0, flops_conv = 0, flops_attention = 0, flops_other = 0;
  double bytes = 0;  // global-memory bytes every kernel and library call must move
  double largest_buffer_bytes = 0;  // the largest single allocation made in this phase
  double peak_device_bytes = 0;     // live device memory at its highest during this phase
  std::vector<double> estimate_s;   // per gpus() entry
  double flops() const { return flops_gemm + flops_conv + flops_attention + flops_other; }
};

// Recording on/off (off: the twins do not count; the default, so tests pay nothing).
void enable(bool on);
bool enabled();
// Dry: launches and library calls are recorded, not executed; copies and memsets move nothing.
void set_dry(bool dry);
bool dry();

// Counts from now on go to `name` (and always to "run", the whole run). Empty: only "run".
void set_phase(const std::string& name);
const std::map<std::string, Phase>& phases();
// Forget everything recorded (the live-memory tally is kept: allocations outlive phases).
void reset();


// The FLOP class of every launch of the kernel its launcher names `kernel`: "attention" counts
// its FLOPs as attention instead of "other", and `tensor_cores` times them at the fp16 tensor-core
// rate instead of the fp32 rate. Keyed by name rather than set around the launch, so that graph
// replays, which launch long after the launcher returned, count alike.
void set_kernel_class(const std::string& kernel, const char* cls, bool tensor_cores);

// The bytes (and FLOPs) the next kernel launch moves (computes), as its launcher states them.
void note_next_launch(double bytes, double flops);
// Takes (and clears) what note_next_launch stated: {bytes, flops}.
std::pair<double, double> take_note();

// From the twins and the launcher.
enum class Copy { kH2D, kD2H, kD2D, kH2H };
void on_alloc(double bytes);
void on_free(double bytes);
void on_copy(Copy kind, double bytes);
void on_sync(const char* call);
void on_launch(const char* kernel, bool in_graph, double bytes, double flops);
void on_graph_launch();
void on_capture();
void on_setup_in_capture(const char* call);
// precision_fp16: whether the math runs at the fp16 tensor-core rate.
void on_library(const char* call, double flops, double bytes, bool precision_fp16, bool in_graph);

}  // namespace census
}  // namespace simt
