// Host twins of the cuBLAS calls the CUDA backend makes, against the real cublas_api.h
// declarations. Semantics as documented: column-major storage, op(A) m x k, op(B) k x n, leading
// dimensions (checked like cuBLAS checks them), strided batches, alpha/beta (C is not read when
// beta == 0), fp16/fp32 data, fp32 accumulation (CUBLAS_COMPUTE_32F; _FAST_TF32 rounds inputs to
// TF32 first), and pointers that must be device memory. No refusal knob (SIMT_REFUSE,
// simt_refuse.h) acts here: cublasGemmEx is where the backend goes when cuBLASLt refuses.
#include <cublas_api.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "blas_twin_math.h"
#include "simt_census.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace simt {
bool is_device_pointer(const void* p);
}

namespace {

using simt::blas::dot;
using simt::blas::load;
using simt::blas::store;
using simt::blas::to_tf32;

cublasStatus_t gemm(const char* call, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const void* alpha, const void* A, cudaDataType at, int lda,
                    long long sa, const void* B, cudaDataType bt, int ldb, long long sb,
                    const void* beta, void* C, cudaDataType ct, int ldc, long long sc, int batch,
                    cublasComputeType_t compute) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto type_ok = [](cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; };
  if (m < 0 || n < 0 || k < 0 || batch < 0 || !type_ok(at) || !type_ok(bt) || !type_ok(ct))
    return CUBLAS_STATUS_INVALID_VALUE;
  bool tA = ta != CUBLAS_OP_N, tB = tb != CUBLAS_OP_N;
  if (lda < std::max(1, tA ? k : m) || ldb < std::max(1, tB ? n : k) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  if ((k > 0 && (!simt::is_device_pointer(A) || !simt::is_device_pointer(B))) ||
      !simt::is_device_pointer(C))
    return CUBLAS_STATUS_EXECUTION_FAILED;  // the real library would fault on host pointers
  if (simt::capturing()) {
    // A graph node: the scalars are read now (host pointer mode), the matrices when it runs.
    uint32_t al_bits = 0, be_bits = 0;
    const size_t scalar = compute == CUBLAS_COMPUTE_16F || compute == CUBLAS_COMPUTE_16F_PEDANTIC ? 2 : 4;
    std::memcpy(&al_bits, alpha, scalar);
    std::memcpy(&be_bits, beta, scalar);
    simt::capture([=]() {
      gemm(call, h, ta, tb, m, n, k, &al_bits, A, at, lda, sa, B, bt, ldb, sb, &be_bits, C, ct, ldc, sc, batch,
           compute);
    });
    return CUBLAS_STATUS_SUCCESS;
  }
  {
    auto es = [](cudaDataType t) { return t == CUDA_R_32F ? 4.0 : 2.0; };
    const float be0 = compute == CUBLAS_COMPUTE_16F || compute == CUBLAS_COMPUTE_16F_PEDANTIC
                          ? __half2float(*static_cast<const __half*>(beta))
                          : *static_cast<const float*>(beta);
    const double bytes = (double)batch * ((double)m * k * es(at) + (double)k * n * es(bt) +
                                          (double)m * n * es(ct) * (be0 != 0.f ? 2 : 1));
    simt::census::on_library(call, 2.0 * m * n * k * (double)batch, bytes,
                             (at == CUDA_R_16F || at == CUDA_R_16BF) && (bt == CUDA_R_16F || bt == CUDA_R_16BF), simt::replaying());
    if (simt::census::dry()) return CUBLAS_STATUS_SUCCESS;
  }
  bool half_scalars = compute == CUBLAS_COMPUTE_16F || compute == CUBLAS_COMPUTE_16F_PEDANTIC;
  float al = half_scalars ? __half2float(*static_cast<const __half*>(alpha))
                          : *static_cast<const float*>(alpha);
  float be = half_scalars ? __half2float(*static_cast<const __half*>(beta))
                          : *static_cast<const float*>(beta);
  bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32 ||
              (compute == CUBLAS_COMPUTE_32F && h->math == CUBLAS_TF32_TENSOR_OP_MATH);
  // Widen op(A) to rows and op(B) to columns once, so every dot product runs over two
  // contiguous float arrays (the inputs are read m·n times otherwise).
  std::vector<float> aw((size_t)m * k), bw((size_t)n * k);
  for (int b = 0; b < batch; ++b) {
    const void* Ab = static_cast<const char*>(A) + (size_t)(sa * b) * (at == CUDA_R_32F ? 4 : 2);
    const void* Bb = static_cast<const char*>(B) + (size_t)(sb * b) * (bt == CUDA_R_32F ? 4 : 2);
    void* Cb = static_cast<char*>(C) + (size_t)(sc * b) * (ct == CUDA_R_32F ? 4 : 2);
    // op(A)(i, p): A(i, p) = A[i + p*lda] untransposed, A(p, i) = A[p + i*lda] transposed.
    for (int i = 0; i < m; ++i)
      for (int p = 0; p < k; ++p) {
        float v = load(Ab, at, tA ? (long long)i * lda + p : i + (long long)p * lda);
        aw[(size_t)i * k + p] = tf32 ? to_tf32(v) : v;
      }
    for (int j = 0; j < n; ++j)
      for (int p = 0; p < k; ++p) {
        float v = load(Bb, bt, tB ? j + (long long)p * ldb : p + (long long)j * ldb);
        bw[(size_t)j * k + p] = tf32 ? to_tf32(v) : v;
      }
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        float acc = dot(&aw[(size_t)i * k], &bw[(size_t)j * k], k);
        long long ci = i + (long long)j * ldc;
        float out = al * acc;
        if (be != 0.f) out += be * load(Cb, ct, ci);
        store(Cb, ct, ci, out);
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
  if (simt::setup_refused_in_capture("cublasCreate")) return CUBLAS_STATUS_NOT_SUPPORTED;
  *h = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS (emulated)";
  }
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                              int n, int k, const float* alpha, const float* A, int lda,
                              const float* B, int ldb, const float* beta, float* C, int ldc) {
  return gemm("cublasSgemm_v2", h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B, CUDA_R_32F, ldb, 0, beta, C,
              CUDA_R_32F, ldc, 0, 1, CUBLAS_COMPUTE_32F);
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long sa, const float* B, int ldb, long long sb,
                                         const float* beta, float* C, int ldc, long long sc,
                                         int batch) {
  return gemm("cublasSgemmStridedBatched", h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, sa, B, CUDA_R_32F, ldb, sb, beta, C,
              CUDA_R_32F, ldc, sc, batch, CUBLAS_COMPUTE_32F);
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void* alpha, const void* A, cudaDataType at,
                            int lda, const void* B, cudaDataType bt, int ldb, const void* beta,
                            void* C, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  return gemm("cublasGemmEx", h, ta, tb, m, n, k, alpha, A, at, lda, 0, B, bt, ldb, 0, beta, C, ct, ldc, 0, 1,
              compute);
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType at,
                                          int lda, long long sa, const void* B, cudaDataType bt,
                                          int ldb, long long sb, const void* beta, void* C,
                                          cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t) {
  return gemm("cublasGemmStridedBatchedEx", h, ta, tb, m, n, k, alpha, A, at, lda, sa, B, bt, ldb, sb, beta, C, ct, ldc, sc,
              batch, compute);
}
