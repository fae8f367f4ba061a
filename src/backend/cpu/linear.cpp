// CPU GEMM and the linear op. Plain: a triple loop with a double accumulator per output (the
// truth). Fast: one OpenBLAS sgemm over all rows of x, bias pre-filled into the output so the GEMM
// adds onto it (beta = 1) instead of a second pass.
#include <cblas.h>

#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace sdgen::cpu {

double dot_d(const float* a, const float* b, int64_t n) {
  double acc = 0.0;
  // simd only splits the sum into a few double partial sums; still far more exact than fp32.
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += (double)a[i] * (double)b[i];
  return acc;
}

void gemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda,
              B, (int)ldb, beta, C, (int)ldc);
}

void gemm_nn(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
              (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void fill_rows(float* y, int64_t M, int64_t N, const float* bias) {
  if (!bias) {
    std::memset(y, 0, (size_t)(M * N) * sizeof(float));
    return;
  }
#pragma omp parallel for if (M * N > (1 << 16))
  for (int64_t m = 0; m < M; ++m) std::memcpy(y + m * N, bias, (size_t)N * sizeof(float));
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, bool plain) {
  const int64_t K = w.dim(1), N = w.dim(0);
  const int64_t M = K ? x.numel() / K : 0;
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor y = Tensor::empty(out_shape);
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* bp = bias.defined() ? bias.f32() : nullptr;
  float* yp = y.f32();
  if (!plain) {
    fill_rows(yp, M, N, bp);
    if (K > 0) gemm_nt(M, N, K, 1.0f, xp, K, wp, K, bp ? 1.0f : 0.0f, yp, N);
    return y;
  }
  // Rows are independent, so threading them leaves every value unchanged.
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = (bp ? bp[n] : 0.0) + dot_d(xp + m * K, wp + n * K, K);
      yp[m * N + n] = (float)acc;
    }
  }
  return y;
}

}  // namespace sdgen::cpu
