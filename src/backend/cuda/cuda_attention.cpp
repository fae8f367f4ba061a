// CUDA multi-head attention, unfused first version: per (image, head) one cuBLAS GEMM for the
// fp32 scores S = scale·q·kᵀ, the softmax kernel (with the causal mask) writing probabilities in
// the activation dtype, and one GEMM for P·v straight into the head's columns of the output. It
// materializes [Lq, Lk] scores per head (64 MiB at 4096 tokens), which the flash-attention kernel
// will remove; it exists so that attention runs, and is tested, on CUDA now.
//
// cuBLAS is column-major: a row-major [L, D] head slice with row stride H·D is the D×L matrix
// with ld = H·D. So Sᵀ (Lk×Lq) = op_T(k slice) · q slice, and Oᵀ (D×Lq) = v slice · Pᵀ.
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"
#include "common/census.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

Tensor CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                              float scale, bool causal) {
  DType dt = q.dtype();
  int64_t N = q.dim(0), Lq = q.dim(1), Lk = k.dim(1), HD = q.dim(2), D = HD / heads;
  Tensor out = Tensor::empty(q.shape(), dt, Device::CUDA);
  if (out.numel() == 0) return out;
  Tensor kk = as(k, dt), vv = as(v, dt);
  Tensor scores = Tensor::empty({Lq, Lk}, DType::F32, Device::CUDA);
  Tensor probs = Tensor::empty({Lq, Lk}, dt, Device::CUDA);
  cudaDataType t = dt == DType::F32 ? CUDA_R_32F : CUDA_R_16F;
  size_t es = dtype_size(dt);
  const float one = 1.f, zero = 0.f;
  const CensusFlopClass flops_are("attention");
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < heads; ++h) {
      const char* qh = static_cast<const char*>(q.data()) + (size_t)((n * Lq) * HD + h * D) * es;
      const char* kh = static_cast<const char*>(kk.data()) + (size_t)((n * Lk) * HD + h * D) * es;
      const char* vh = static_cast<const char*>(vv.data()) + (size_t)((n * Lk) * HD + h * D) * es;
      char* oh = static_cast<char*>(out.data()) + (size_t)((n * Lq) * HD + h * D) * es;
      SDGEN_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, (int)Lk, (int)Lq, (int)D,
                                      &scale, kh, t, (int)HD, qh, t, (int)HD, &zero,
                                      scores.data(), CUDA_R_32F, (int)Lk, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
      kernels::softmax_scores(scores.data_as<float>(), probs.data(), Lq, Lk, causal ? Lq : 0, dt,
                              stream_);
      SDGEN_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, (int)D, (int)Lq, (int)Lk,
                                      &one, vh, t, (int)HD, probs.data(), t, (int)Lk, &zero, oh, t,
                                      (int)HD, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  return out;
}

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
