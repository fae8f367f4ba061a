// CUDA linear layer: y[M, N] = x[M, K] · w[N, K]ᵀ + bias through cublasGemmEx (fp32 accumulate for
// both dtypes; TF32 is never enabled implicitly), then the bias as a per-channel add. In cuBLAS's
// column-major view, row-major y[M, N] is the N×M matrix yᵀ = w·xᵀ, and row-major w[N, K] is the
// K×N matrix wᵀ, hence op(A) = T with lda = K. A cuBLASLt bias epilogue can replace the second
// pass later.
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"
#include "common/check.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

Tensor CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  DType dt = x.dtype();
  int64_t K = x.dim(-1), N = w.dim(0), M = K ? x.numel() / K : 0;
  Shape s = x.shape();
  s.back() = N;
  Tensor y = Tensor::empty(s, dt, Device::CUDA);
  if (M == 0 || N == 0) return y;
  Tensor wt = as(w, dt);
  cudaDataType t = dt == DType::F32 ? CUDA_R_32F : CUDA_R_16F;
  const float one = 1.f, zero = 0.f;
  if (K == 0) {
    SDGEN_CUDA_CHECK(cudaMemsetAsync(y.data(), 0, y.nbytes(), stream_));
  } else {
    SDGEN_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one,
                                    wt.data(), t, (int)K, x.data(), t, (int)K, &zero, y.data(), t,
                                    (int)N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (bias.defined()) {
    Tensor b = as(bias, dt);
    kernels::add_channel(y.data(), b.data(), y.data(), 1, M, N, dt, stream_);
  }
  return y;
}

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
