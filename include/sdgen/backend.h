// Backend: one implementation of every op in ops.h. Each op family lives in its own file per
// backend (src/backend/cpu/norm.cpp, src/backend/cuda/cuda_norm.cpp, ...), all implementing the one
// declaration here. ops.h checks shapes before calling in, so backends may assume valid inputs
// and allocate outputs of the documented shape.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sdgen/tensor.h"

namespace sdgen {

// The ops of the interface, for Backend::supports.
enum class Op {
  kConv2d, kLinear, kGroupNorm, kLayerNorm, kAttention, kSoftmax, kUnary, kGeglu, kAdd, kAddChannel,
  kScale, kUpsample, kConcat, kEmbedding, kTimestepEmbedding, kCast, kRepeatBatch, kSamplerStep, kInpaintBlend,
  kImageToU8, kPad, kDenoised, kAddScaledAt, kGuidanceRescale
};

// A recorded sequence of a backend's ops (a CUDA graph), replayed as one launch.
class Graph {
 public:
  virtual ~Graph() = default;
  virtual void launch() = 0;
};

// A copy to the host that the caller does not wait for (Backend::download_async): it is queued
// after the work issued so far; wait() blocks until it has landed and returns the host tensor.
class Download {
 public:
  virtual ~Download() = default;
  virtual Tensor wait() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // Whether this backend (as built) runs `op` in `dtype`; tests ask instead of expecting errors.
  virtual bool supports(Op op, DType dtype) const {
    (void)op, (void)dtype;
    return true;
  }

  // Records the device work `body` issues (nothing runs; allocations are made and kept for the
  // graph) and returns it as a Graph, or nullptr where the backend has no graphs (then `body` did
  // not run either). Host values `body` reads are baked in: per-step values must live in tensors.
  virtual std::unique_ptr<Graph> capture(const std::function<void()>& body) {
    (void)body;
    return nullptr;
  }
  // Waits until the work issued so far has finished (host reads of results do this themselves).
  virtual void synchronize() {}
  // x (on this backend) copied to the host without waiting: the host can queue more work before
  // it waits for the copy. One at a time: a second call waits for the first copy. The host's is
  // a finished copy.
  virtual std::unique_ptr<Download> download_async(const Tensor& x);
  // Returns cached free memory to the system (between stages whose buffers differ in size).
  virtual void release_cached_memory() {}
  // Device memory held from the driver at its highest so far; 0 for the host.
  virtual size_t peak_memory_bytes() const { return 0; }
  // Memory a generation can still take on this device and where the figure comes from (the
  // up-front memory check of sd-gen, pipeline/memory_estimate.h). The host's by default
  // (core/host_memory.h); the CUDA backend's is the free device memory after its cache is returned.
  struct Available {
    uint64_t bytes = 0;
    std::string source;
  };
  virtual Available available_memory();

  virtual Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride,
                        int padding, const Tensor& add) = 0;
  virtual Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual) = 0;
  virtual Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                            float eps, bool fuse_silu) = 0;
  virtual Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            float eps) = 0;
  virtual Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                           float scale, bool causal) = 0;
  virtual Tensor softmax(const Tensor& x) = 0;
  enum class Unary { kSilu, kQuickGelu, kGelu, kRelu, kTanh };
  virtual Tensor unary(const Tensor& x, Unary op) = 0;
  virtual Tensor geglu(const Tensor& x) = 0;
  virtual Tensor add(const Tensor& a, const Tensor& b) = 0;
  virtual Tensor add_channel(const Tensor& x, const Tensor& b) = 0;
  virtual Tensor scale(const Tensor& x, float s) = 0;
  virtual Tensor upsample_nearest2x(const Tensor& x) = 0;
  virtual Tensor pad(const Tensor& x, int top, int bottom, int left, int right) = 0;
  virtual Tensor concat_channels(const Tensor& a, const Tensor& b) = 0;
  virtual Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table) = 0;
  virtual Tensor timestep_embedding(const std::vector<float>& t, int dim, DType dtype) = 0;
  virtual Tensor cast(const Tensor& x, DType dtype) = 0;
  virtual void image_to_u8(const Tensor& x, Tensor& out) = 0;

  // The sampler's device-resident ops (ops.h, "sampler").
  virtual Tensor timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim,
                                       DType dtype) = 0;
  virtual Tensor scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times,
                                    DType dtype) = 0;
  virtual void sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table,
                            const Tensor& noise, Tensor& step, float guidance) = 0;
  virtual void inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise,
                             const Tensor& table, const Tensor& step) = 0;
  virtual void denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step,
                        float guidance, Tensor& out) = 0;
  virtual Tensor guidance_rescale(const Tensor& eps, float guidance, float phi) = 0;
  virtual Tensor add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step,
                               int64_t column, int64_t row_offset) = 0;
};

// The CPU backend. plain=true: straightforward fp32 loops, the numeric truth. plain=false: the
// fast paths (OpenBLAS GEMM, im2col convolution, OpenMP), checked against the plain ones.
std::unique_ptr<Backend> make_cpu_backend(bool plain);
// Selects which CPU backend serves CPU tensors in ops.h (default: fast).
void set_cpu_plain(bool plain);

// The meta backend: outputs of the right shape and no bytes, the ops' FLOPs counted
// (src/backend/meta_backend.cpp, pipeline/dry_run.h).
std::unique_ptr<Backend> make_meta_backend();

// The backend that runs ops on `device` tensors. Throws a runtime error for CUDA when no CUDA
// backend was registered (a CPU-only build) or when it cannot start (no device).
Backend& backend_for(Device device);

// The core library does not link the CUDA backend: the program that wants it registers its
// factory once at start-up. sd-gen registers the real one (sdgen_cuda); the emulator's tests
// register the same code built for the SIMT emulator (sdgen_cuda_emu), so the whole pipeline can
// run on Device::CUDA without a GPU. make_cuda_backend is defined by either library.
using BackendFactory = std::unique_ptr<Backend> (*)();
void set_cuda_backend_factory(BackendFactory factory);
bool cuda_backend_registered();
// The GPU the CUDA backend selects (cudaSetDevice) when it is created: --device cuda:N. Default 0.
// Throws Error(kUsage) when the backend already runs on another GPU (one GPU per process).
void set_cuda_device_ordinal(int ordinal);
int cuda_device_ordinal();
std::unique_ptr<Backend> make_cuda_backend();
// sd-gen's factory: the CUDA backend from the plugin libsdgen_cuda.so beside the program (or
// $SDGEN_CUDA_PLUGIN), opened on first use (src/backend/cuda_plugin.cpp). Throws the runtime error
// (exit 5) naming what could not be loaded, e.g. a missing libcublas.so.13.
std::unique_ptr<Backend> load_cuda_plugin();
// Whether this process has opened the plugin, and with it the CUDA libraries (their resident pages
// count in the host memory estimate).
bool cuda_plugin_loaded();

}  // namespace sdgen
