// Backend: one implementation of every op in ops.h. Each op family lives in its own file per
// backend (src/backend/cpu/norm.cpp, src/backend/cuda/norm.cpp, ...), all implementing the one
// declaration here. ops.h checks shapes before calling in, so backends may assume valid inputs
// and allocate outputs of the documented shape.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "sdgen/tensor.h"

namespace sdgen {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;

  virtual Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride,
                        int padding) = 0;
  virtual Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) = 0;
  virtual Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                            float eps, bool fuse_silu) = 0;
  virtual Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            float eps) = 0;
  virtual Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                           float scale, bool causal) = 0;
  virtual Tensor softmax(const Tensor& x) = 0;
  enum class Unary { kSilu, kQuickGelu, kGelu };
  virtual Tensor unary(const Tensor& x, Unary op) = 0;
  virtual Tensor geglu(const Tensor& x) = 0;
  virtual Tensor add(const Tensor& a, const Tensor& b) = 0;
  virtual Tensor add_channel(const Tensor& x, const Tensor& b) = 0;
  virtual Tensor scale(const Tensor& x, float s) = 0;
  virtual Tensor upsample_nearest2x(const Tensor& x) = 0;
  virtual Tensor concat_channels(const Tensor& a, const Tensor& b) = 0;
  virtual Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table) = 0;
  virtual Tensor timestep_embedding(const std::vector<float>& t, int dim, DType dtype) = 0;
  virtual Tensor cast(const Tensor& x, DType dtype) = 0;
};

// The CPU backend. plain=true: straightforward fp32 loops, the numeric truth. plain=false: the
// fast paths (OpenBLAS GEMM, im2col convolution, OpenMP), checked against the plain ones.
std::unique_ptr<Backend> make_cpu_backend(bool plain);
// Selects which CPU backend serves CPU tensors in ops.h (default: fast).
void set_cpu_plain(bool plain);
bool cpu_plain();

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
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace sdgen
