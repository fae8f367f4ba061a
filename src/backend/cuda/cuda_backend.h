// The CUDA backend: host code that checks nothing twice (ops.h did), allocates outputs on the
// device and calls the kernel launchers of kernels/kernels.h or cuBLAS. The same sources build
// against the real CUDA runtime (target sdgen_cuda) and against the SIMT emulator (sdgen_cuda_emu,
// tests/simt/), see src/backend/cuda/cuda_backend.cmake. Every op, library call and copy runs on
// the backend's one non-blocking stream; device memory comes from the pool of cuda_memory.h.
#pragma once
#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#if SDGEN_HAVE_CUDNN
#include <cudnn.h>
#endif

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <tuple>

#include "backend/cuda/cuda_memory.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

namespace sdgen {

#ifndef SDGEN_WITH_CUDA
// make_cuda_backend() is declared in sdgen/backend.h; defined in cuda_backend.cpp.
#endif

namespace cuda {

// Throws the runtime error (exit 5) that names a cuDNN older than 9.8 (version as cudnnGetVersion
// gives it: major·10000 + minor·100 + patch). The backend calls it before anything else.
void check_cudnn_version(size_t version);

// The plans (cuBLASLt layouts and algorithm, cuDNN execution plans) made with a library handle
// are cached by shape and handle; a backend releases its own when it goes, so that a later handle
// at the same address never finds plans made for another. Return how many were released.
size_t release_linear_plans(const void* cublaslt_handle);
size_t release_conv_plans(const void* cudnn_handle);
// The entries of a plan cache whose key starts with `handle` removed; how many.
template <class Map>
size_t erase_plans_of(Map& plans, const void* handle) {
  size_t n = 0;
  for (auto it = plans.begin(); it != plans.end();) {
    if (std::get<0>(it->first) == handle) {
      it = plans.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

class CudaBackend : public Backend {
 public:
  CudaBackend();
  ~CudaBackend() override;
  std::string name() const override;
  Device device() const override { return Device::CUDA; }

  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride,
                int padding, const Tensor& add) override;
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual) override;
  Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                    float eps, bool fuse_silu) override;
  Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) override;
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override;
  Tensor softmax(const Tensor& x) override;
  Tensor unary(const Tensor& x, Unary op) override;
  Tensor geglu(const Tensor& x) override;
  Tensor add(const Tensor& a, const Tensor& b) override;
  Tensor add_channel(const Tensor& x, const Tensor& b) override;
  Tensor scale(const Tensor& x, float s) override;
  Tensor upsample_nearest2x(const Tensor& x) override;
  Tensor pad(const Tensor& x, int top, int bottom, int left, int right) override;
  Tensor concat_channels(const Tensor& a, const Tensor& b) override;
  Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table) override;
  Tensor timestep_embedding(const std::vector<float>& t, int dim, DType dtype) override;
  Tensor cast(const Tensor& x, DType dtype) override;
  void image_to_u8(const Tensor& x, Tensor& out) override;
  Tensor timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim,
                               DType dtype) override;
  Tensor scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times,
                            DType dtype) override;
  void sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table, const Tensor& noise,
                    Tensor& step, float guidance) override;
  void inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise, const Tensor& table,
                     const Tensor& step) override;
  Tensor guidance_rescale(const Tensor& eps, float guidance, float phi) override;
  void denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step, float guidance,
                Tensor& out) override;
  Tensor add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step, int64_t column,
                       int64_t row_offset) override;

  bool supports(Op op, DType dtype) const override;
  std::unique_ptr<Graph> capture(const std::function<void()>& body) override;
  void synchronize() override;
  std::unique_ptr<Download> download_async(const Tensor& x) override;
  void release_cached_memory() override { cuda::release_cached_memory(); }
  size_t peak_memory_bytes() const override { return cuda::pool_peak_reserved_bytes(); }
  Available available_memory() override;

  cudaStream_t stream() const { return stream_; }

 private:
  // `t` in `dtype` (itself when it already is): parameters follow the activation's dtype.
  Tensor as(const Tensor& t, DType dtype);
  cudaStream_t stream_ = nullptr;  // every kernel, library call and copy (cuda_memory.h)
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;  // linear layers (epilogues)
#if SDGEN_HAVE_CUDNN
  cudnnHandle_t cudnn_ = nullptr;
#endif
};


// The most workspace one library call may use, in bytes: the cuBLASLt preference's cap
// (cuda_linear.cpp), and the cap above which a cuDNN engine config is skipped (cuda_conv.cpp).
// The memory estimate's fixed allowance for library workspaces (src/pipeline/memory_estimate.cpp,
// the 64 MiB in e.other) covers it: a workspace is a pool buffer that lives for one call on the
// backend's one stream, so at most one is in use at a time.
constexpr int64_t kConvWorkspaceCap = int64_t(32) << 20;

// The largest power of two up to 16 that divides every address (null ones are skipped): the
// alignment a cuDNN plan or cuBLASLt heuristic may assume of the pointers it is later given.
inline int common_alignment(std::initializer_list<const void*> ptrs) {
  int a = 16;
  for (const void* p : ptrs)
    while (p && reinterpret_cast<uintptr_t>(p) % (uintptr_t)a) a /= 2;
  return a;
}

}  // namespace cuda
}  // namespace sdgen

#define SDGEN_CUBLAS_CHECK(call)                                                          \
  do {                                                                                    \
    cublasStatus_t sdgen_st_ = (call);                                                    \
    if (sdgen_st_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::sdgen::throw_runtime(std::string("cuBLAS error ") + cublasGetStatusString(sdgen_st_) + \
                             " in " #call " at " __FILE__ ":" + std::to_string(__LINE__)); \
  } while (0)

#define SDGEN_CUDNN_CHECK(call)                                                            \
  do {                                                                                     \
    cudnnStatus_t sdgen_dn_ = (call);                                                      \
    if (sdgen_dn_ != CUDNN_STATUS_SUCCESS)                                                 \
      ::sdgen::throw_runtime(std::string("cuDNN error ") + cudnnGetErrorString(sdgen_dn_) + \
                             " in " #call " at " __FILE__ ":" + std::to_string(__LINE__));  \
  } while (0)
