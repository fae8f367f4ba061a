// CPU GEMM and the linear op. Plain: a triple loop with a double accumulator per output (the
// truth). Fast: OpenBLAS sgemm on blocks of rows (or of output columns when there are few rows),
// one block per OpenMP thread, bias pre-filled into the output so the GEMM adds onto it (beta = 1).
// fp16 and bf16 weights are read through WeightRows (cpu_backend.h), widened a panel at a time;
// bf16 ones go to oneDNN's bf16 GEMM instead where it is available (linear_bf16, bf16_gemm.cpp).
//
// Threading: the fast backend threads with OpenMP only and runs OpenBLAS single-threaded inside
// its parallel regions (set in make_cpu_backend). With both pools active, OpenBLAS's workers spin
// for a long while after each call and fight OpenMP's threads for the same cores, which slows
// attention (GEMM, softmax, GEMM per block) several times over.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "backend/cpu/cpu_backend.h"

namespace sdgen::cpu {

void configure_blas() {
  // Our threads call OpenBLAS from inside OpenMP regions, so it must not start its own.
  openblas_set_num_threads(1);
  // Kernel choice is OpenBLAS's (DYNAMIC_ARCH: by CPU, or OPENBLAS_CORETYPE). Note that forcing
  // an AVX2 core (e.g. OPENBLAS_CORETYPE=Haswell) on an AVX-512 CPU halves GEMM speed.
}

float* thread_scratch(int slot, size_t n) {
  struct Buffer {
    std::unique_ptr<float[]> data;
    size_t size = 0;
  };
  thread_local Buffer buffers[4];
  Buffer& b = buffers[slot];
  if (b.size < n) {
    b.data.reset(new float[n]);
    b.size = n;
  }
  return b.data.get();
}

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
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda,
              B, (int)ldb, beta, C, (int)ldc);
}

WeightRows WeightRows::of(const Tensor& w) {
  const int64_t N = w.dim(0);
  return {w.data(), w.dtype(), N ? w.numel() / N : 0};
}

int64_t WeightRows::panel_rows(int64_t n) const {
  // Each panel costs a repacking of the sgemm's other operand, so panels must not be thin: 4 M
  // floats (16 MB) keeps every SD weight to at most a few panels (≥ 364 rows at K = 3·3·1280).
  constexpr int64_t kPanelFloats = int64_t(1) << 22;
  if (dtype == DType::F32 || K == 0) return std::max<int64_t>(n, 1);
  return std::max<int64_t>(1, std::min(n, kPanelFloats / K));
}

const float* WeightRows::rows(int64_t n0, int64_t n1) const {
  if (dtype == DType::F32) return static_cast<const float*>(data) + n0 * K;
  float* panel = thread_scratch(2, (size_t)((n1 - n0) * K));
  widen(dtype, static_cast<const uint16_t*>(data) + n0 * K, panel, (n1 - n0) * K);
  return panel;
}

void gemm_nt_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                  const WeightRows& B, float beta, float* C, int64_t ldc) {
  const int64_t step = B.panel_rows(n1 - n0);
  for (int64_t p0 = n0; p0 < n1; p0 += step) {
    const int64_t p1 = std::min(n1, p0 + step);
    gemm_nt(M, p1 - p0, K, 1.0f, A, lda, B.rows(p0, p1), K, beta, C + p0, ldc);
  }
}

void fill_rows(float* y, int64_t M, int64_t N, const float* bias) {
  if (!bias) {
    std::memset(y, 0, (size_t)(M * N) * sizeof(float));
    return;
  }
  for (int64_t m = 0; m < M; ++m) std::memcpy(y + m * N, bias, (size_t)N * sizeof(float));
}

void gemm_nt_bias(int64_t M, int64_t N, int64_t K, const float* A, const WeightRows& B,
                  const float* bias, float* C) {
  if (M == 0 || N == 0) return;
  const int64_t threads = omp_get_max_threads();
  // Each thread's sgemm packs all of the operand it does not split, so split the larger one:
  // rows for the long activations (4096 tokens × 320), output columns when the weight dominates
  // (CLIP's 77 tokens, the time embedding, 8×8×1280 convolutions).
  const bool by_rows = M >= N;
  const int64_t parts = std::max<int64_t>(1, std::min(threads, (by_rows ? M : N) / 16));
#pragma omp parallel for schedule(static) num_threads((int)parts)
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t total = by_rows ? M : N;
    const int64_t b0 = total * p / parts, b1 = total * (p + 1) / parts;
    if (by_rows) {
      fill_rows(C + b0 * N, b1 - b0, N, bias);
      gemm_nt_rows(b1 - b0, 0, N, K, A + b0 * K, K, B, 1.0f, C + b0 * N, N);
    } else {
      for (int64_t m = 0; m < M; ++m) {
        if (bias) {
          std::memcpy(C + m * N + b0, bias + b0, (size_t)(b1 - b0) * sizeof(float));
        } else {
          std::memset(C + m * N + b0, 0, (size_t)(b1 - b0) * sizeof(float));
        }
      }
      gemm_nt_rows(M, b0, b1, K, A, K, B, 1.0f, C, N);
    }
  }
}

// The bf16 fast path: x bf16 as stored (or fp32, rounded here), w bf16, on oneDNN.
Tensor linear_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual) {
  const int64_t K = w.dim(1), N = w.dim(0);
  const int64_t M = K ? x.numel() / K : 0;
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor y = Tensor::empty(out_shape);
  const uint16_t* xb = x.dtype() == DType::BF16 ? x.data_as<uint16_t>() : nullptr;
  if (!xb) {
    uint16_t* rounded = reinterpret_cast<uint16_t*>(thread_scratch(0, (size_t)(M * K + 1) / 2));
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; ++m) narrow_bf16(x.f32() + m * K, rounded + m * K, K);
    xb = rounded;
  }
  // The residual is the GEMM's starting C (beta = 1), so it is added in the same pass.
  if (residual.defined()) std::memcpy(y.f32(), residual.f32(), (size_t)(M * N) * sizeof(float));
  gemm_nt_bf16(M, N, K, 1.0f, xb, K, w.data_as<uint16_t>(), K, bias.defined() ? bias.f32() : nullptr,
               residual.defined() ? 1.0f : 0.0f, y.f32(), DType::F32, N);
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, bool plain) {
  const int64_t K = w.dim(1), N = w.dim(0);
  const int64_t M = K ? x.numel() / K : 0;
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor y = Tensor::empty(out_shape);
  const float* xp = x.f32();
  const float* bp = bias.defined() ? bias.f32() : nullptr;
  float* yp = y.f32();
  const float* rp = residual.defined() ? residual.f32() : nullptr;
  if (!plain) {
    gemm_nt_bias(M, N, K, xp, WeightRows::of(w), bp, yp);
    if (rp) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < M * N; ++i) yp[i] += rp[i];
    }
    return y;
  }
  const float* wp = w.f32();
  // Rows are independent, so threading them leaves every value unchanged.
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = (bp ? bp[n] : 0.0) + dot_d(xp + m * K, wp + n * K, K) + (rp ? rp[m * N + n] : 0.0);
      yp[m * N + n] = (float)acc;
    }
  }
  return y;
}

}  // namespace sdgen::cpu
