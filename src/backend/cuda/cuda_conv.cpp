// CUDA convolution through cuDNN: NHWC activations and OHWI (= cuDNN's NHWC "KRSC") filters need
// no layout change. With a bias the fused cudnnConvolutionBiasActivationForward (identity
// activation, which cuDNN allows only with IMPLICIT_PRECOMP_GEMM) is tried first; where cuDNN
// does not support that configuration, a plain cudnnConvolutionForward with the heuristic's
// algorithm is followed by the per-channel bias kernel. fp32 runs with CUDNN_FMA_MATH so TF32 is
// never used implicitly; fp16 with tensor ops and fp32 accumulation.
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"

#include <map>
#include <memory>
#include <tuple>

#include "common/check.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

#if SDGEN_HAVE_CUDNN
namespace {

struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  Descriptors() {
    SDGEN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    SDGEN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    SDGEN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&b));
    SDGEN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    SDGEN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    SDGEN_CUDNN_CHECK(cudnnCreateActivationDescriptor(&act));
  }
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(b);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyActivationDescriptor(act);
  }
};

// Everything about one convolution shape that does not depend on the data: descriptors, the
// algorithm, whether cuDNN fuses the bias for it, the workspace size. Made once per shape (the
// UNet has a few dozen), so a step creates no descriptor and asks no heuristic.
struct ConvPlan {
  Descriptors d;
  bool fused = false;  // cudnnConvolutionBiasActivationForward supports this shape
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  size_t workspace = 0;
};

using ConvKey = std::tuple<const void*, int, int, int, int, int, int, int, int, int, int, bool>;

std::map<ConvKey, std::unique_ptr<ConvPlan>>& conv_plans() {
  static std::map<ConvKey, std::unique_ptr<ConvPlan>> m;
  return m;
}

}  // namespace
#endif

#if SDGEN_HAVE_CUDNN
namespace {
// The plain convolution for `plan`: the heuristic's first working algorithm.
void unfuse(cudnnHandle_t h, ConvPlan& plan) {
  const Descriptors& d = plan.d;
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int found = 0;
  SDGEN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, 8, &found, perf));
  int pick = 0;
  while (pick < found && perf[pick].status != CUDNN_STATUS_SUCCESS) ++pick;
  if (pick == found) throw_runtime("cuDNN offers no algorithm for this convolution");
  plan.fused = false;
  plan.algo = perf[pick].algo;
  SDGEN_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, plan.algo, &plan.workspace));
}

ConvPlan& conv_plan(cudnnHandle_t h, DType dt, int N, int H, int W, int C, int K, int R, int S, int stride,
                          int padding, bool bias) {
  std::unique_ptr<ConvPlan>& slot =
      conv_plans()[ConvKey{h, (int)dt, N, H, W, C, K, R, S, stride, padding, bias}];
  if (slot) return *slot;
  auto plan = std::make_unique<ConvPlan>();
  Descriptors& d = plan->d;
  const cudnnDataType_t t = dt == DType::F32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_HALF;
  const int Ho = (H + 2 * padding - R) / stride + 1, Wo = (W + 2 * padding - S) / stride + 1;
  SDGEN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, t, N, C, H, W));
  SDGEN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NHWC, t, N, K, Ho, Wo));
  SDGEN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d.w, t, CUDNN_TENSOR_NHWC, K, C, R, S));
  SDGEN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv, padding, padding, stride, stride, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  SDGEN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, dt == DType::F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
  if (bias) {
    SDGEN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.b, CUDNN_TENSOR_NHWC, t, 1, K, 1, 1));
    SDGEN_CUDNN_CHECK(cudnnSetActivationDescriptor(d.act, CUDNN_ACTIVATION_IDENTITY, CUDNN_PROPAGATE_NAN, 0.0));
    // The fused bias needs IMPLICIT_PRECOMP_GEMM with an identity activation; where cuDNN cannot
    // size it, the plain convolution and the bias kernel are used.
    size_t bytes = 0;
    if (cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, plan->algo, &bytes) ==
        CUDNN_STATUS_SUCCESS) {
      plan->fused = true;
      plan->workspace = bytes;
      return *(slot = std::move(plan));
    }
  }
  unfuse(h, *plan);
  return *(slot = std::move(plan));
}
}  // namespace
#endif

Tensor CudaBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride,
                           int padding) {
#if !SDGEN_HAVE_CUDNN
  (void)x, (void)w, (void)bias, (void)stride, (void)padding;
  throw_runtime("conv2d is not implemented on CUDA yet (this build has no cuDNN)");
#else
  DType dt = x.dtype();
  int N = (int)x.dim(0), H = (int)x.dim(1), W = (int)x.dim(2), C = (int)x.dim(3);
  int K = (int)w.dim(0), R = (int)w.dim(1), S = (int)w.dim(2);
  int Ho = (H + 2 * padding - R) / stride + 1, Wo = (W + 2 * padding - S) / stride + 1;
  Tensor y = Tensor::empty({N, Ho, Wo, K}, dt, Device::CUDA);
  if (y.numel() == 0) return y;
  Tensor wt = as(w, dt);
  const Tensor b = as(bias, dt);
  ConvPlan& plan = conv_plan(cudnn_, dt, N, H, W, C, K, R, S, stride, padding, b.defined());
  const Descriptors& d = plan.d;
  // The workspace is a pool buffer: reused by later work on the same stream only.
  auto workspace = [&] {
    return plan.workspace ? Tensor::empty({(int64_t)((plan.workspace + 3) / 4)}, DType::F32, Device::CUDA) : Tensor();
  };
  const float one = 1.f, zero = 0.f;
  if (plan.fused) {
    Tensor ws = workspace();
    // z is y with alpha2 = 0: no residual (y's contents are never read).
    const cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
        cudnn_, &one, d.x, x.data(), d.w, wt.data(), d.conv, plan.algo, ws.defined() ? ws.data() : nullptr,
        plan.workspace, &zero, d.y, y.data(), d.b, b.data(), d.act, d.y, y.data());
    if (st == CUDNN_STATUS_SUCCESS) return y;
    if (st != CUDNN_STATUS_NOT_SUPPORTED) SDGEN_CUDNN_CHECK(st);
    unfuse(cudnn_, plan);  // decided once per shape
  }
  Tensor ws = workspace();
  void* wsp = ws.defined() ? ws.data() : nullptr;
  SDGEN_CUDNN_CHECK(cudnnConvolutionForward(cudnn_, &one, d.x, x.data(), d.w, wt.data(), d.conv, plan.algo, wsp,
                                            plan.workspace, &zero, d.y, y.data()));
  if (b.defined())
    kernels::add_channel(y.data(), b.data(), y.data(), 1, (int64_t)N * Ho * Wo, K, dt, stream_);
  return y;
#endif
}

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
