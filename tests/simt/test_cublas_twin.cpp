// The emulator's cuBLAS twin against a plain row/column loop written from the cuBLAS
// documentation: C = alpha·op(A)·op(B) + beta·C, column-major, leading dimensions larger than the
// rows, strided batches, fp16 storage with fp32 compute, and the argument checks.
#include <cublas_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/check.h"

namespace {

template <class T>
T* dev_copy(const std::vector<T>& h) {
  T* p = nullptr;
  SDGEN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), h.size() * sizeof(T)));
  SDGEN_CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}
template <class T>
std::vector<T> host_copy(const T* p, size_t n) {
  std::vector<T> h(n);
  SDGEN_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

std::vector<float> rnd(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Element (r, c) of a column-major matrix with leading dimension ld.
float at(const std::vector<float>& m, long long off, int ld, int r, int c) {
  return m[off + r + (long long)c * ld];
}

struct Case {
  cublasOperation_t ta, tb;
  int m, n, k, lda, ldb, ldc, batch;
  float alpha, beta;
};

void run(const Case& c, bool half) {
  int ar = c.ta == CUBLAS_OP_N ? c.m : c.k, ac = c.ta == CUBLAS_OP_N ? c.k : c.m;
  int br = c.tb == CUBLAS_OP_N ? c.k : c.n, bc = c.tb == CUBLAS_OP_N ? c.n : c.k;
  long long sa = (long long)c.lda * ac + 3, sb = (long long)c.ldb * bc + 5,
            sc = (long long)c.ldc * c.n + 7;  // padded batch strides
  (void)ar;
  (void)br;
  auto A = rnd((size_t)(sa * c.batch), 1), B = rnd((size_t)(sb * c.batch), 2),
       C = rnd((size_t)(sc * c.batch), 3);
  if (half)  // the loop sees the same fp16-rounded values
    for (auto* v : {&A, &B, &C})
      for (auto& x : *v) x = __half2float(__float2half_rn(x));
  // The reference loop.
  std::vector<float> want = C;
  for (int b = 0; b < c.batch; ++b)
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        double acc = 0;
        for (int p = 0; p < c.k; ++p) {
          float a = c.ta == CUBLAS_OP_N ? at(A, sa * b, c.lda, i, p) : at(A, sa * b, c.lda, p, i);
          float bb = c.tb == CUBLAS_OP_N ? at(B, sb * b, c.ldb, p, j) : at(B, sb * b, c.ldb, j, p);
          acc += (double)a * bb;
        }
        long long ci = sc * b + i + (long long)j * c.ldc;
        want[ci] = (float)(c.alpha * acc + c.beta * C[ci]);
      }
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate_v2(&h), CUBLAS_STATUS_SUCCESS);
  std::vector<float> got;
  if (!half) {
    float *dA = dev_copy(A), *dB = dev_copy(B), *dC = dev_copy(C);
    if (c.batch == 1)
      ASSERT_EQ(cublasSgemm_v2(h, c.ta, c.tb, c.m, c.n, c.k, &c.alpha, dA, c.lda, dB, c.ldb,
                               &c.beta, dC, c.ldc),
                CUBLAS_STATUS_SUCCESS);
    else
      ASSERT_EQ(cublasGemmStridedBatchedEx(h, c.ta, c.tb, c.m, c.n, c.k, &c.alpha, dA, CUDA_R_32F,
                                           c.lda, sa, dB, CUDA_R_32F, c.ldb, sb, &c.beta, dC,
                                           CUDA_R_32F, c.ldc, sc, c.batch, CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_SUCCESS);
    got = host_copy(dC, C.size());
    cudaFree(dA), cudaFree(dB), cudaFree(dC);
  } else {
    auto to_half = [](const std::vector<float>& v) {
      std::vector<__half> o(v.size());
      for (size_t i = 0; i < v.size(); ++i) o[i] = __float2half_rn(v[i]);
      return o;
    };
    __half *dA = dev_copy(to_half(A)), *dB = dev_copy(to_half(B)), *dC = dev_copy(to_half(C));
    ASSERT_EQ(cublasGemmStridedBatchedEx(h, c.ta, c.tb, c.m, c.n, c.k, &c.alpha, dA, CUDA_R_16F,
                                         c.lda, sa, dB, CUDA_R_16F, c.ldb, sb, &c.beta, dC,
                                         CUDA_R_16F, c.ldc, sc, c.batch, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
    for (__half v : host_copy(dC, C.size())) got.push_back(__half2float(v));
    cudaFree(dA), cudaFree(dB), cudaFree(dC);
  }
  cublasDestroy_v2(h);
  for (size_t i = 0; i < want.size(); ++i) {
    // Entries outside the m×n windows (padding rows, batch gaps) must be untouched.
    double tol = half ? 2e-3 * (1 + std::fabs(want[i])) : 1e-5 * (1 + std::sqrt((double)c.k));
    ASSERT_NEAR(got[i], want[i], tol) << "element " << i;
  }
}

TEST(CublasTwin, GemmAllTransposesLeadingDimsBatches) {
  for (bool half : {false, true})
    for (auto ta : {CUBLAS_OP_N, CUBLAS_OP_T})
      for (auto tb : {CUBLAS_OP_N, CUBLAS_OP_T})
        for (int batch : {1, 3}) {
          SCOPED_TRACE(testing::Message() << "half " << half << " ta " << ta << " tb " << tb
                                          << " batch " << batch);
          Case c{ta, tb, 5, 7, 9, 0, 0, 0, batch, 0.75f, -0.5f};
          c.lda = (ta == CUBLAS_OP_N ? c.m : c.k) + 2;
          c.ldb = (tb == CUBLAS_OP_N ? c.k : c.n) + 1;
          c.ldc = c.m + 3;
          run(c, half);
        }
}

TEST(CublasTwin, BetaZeroIgnoresNanInC) {
  float nan = NAN, one = 1.f, zero = 0.f;
  std::vector<float> A = {1, 2}, B = {3, 4}, C = {nan};
  float *dA = dev_copy(A), *dB = dev_copy(B), *dC = dev_copy(C);
  cublasHandle_t h;
  cublasCreate_v2(&h);
  // 1×1 = [1 2] · [3 4]ᵀ: m = n = 1, k = 2, A is 1×2 with lda 1.
  ASSERT_EQ(cublasSgemm_v2(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, &one, dA, 1, dB, 2, &zero, dC, 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_copy(dC, 1)[0], 11.f);
  cublasDestroy_v2(h);
  cudaFree(dA), cudaFree(dB), cudaFree(dC);
}

TEST(CublasTwin, RejectsBadLeadingDimensionsAndHostPointers) {
  float one = 1.f;
  std::vector<float> host(16, 1.f);
  float* d = dev_copy(host);
  cublasHandle_t h;
  cublasCreate_v2(&h);
  EXPECT_EQ(cublasSgemm_v2(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 2, &one, d, 3, d, 2, &one, d, 4),
            CUBLAS_STATUS_INVALID_VALUE);  // lda 3 < m 4
  EXPECT_EQ(cublasSgemm_v2(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, host.data(), 2, d, 2, &one,
                           d, 2),
            CUBLAS_STATUS_EXECUTION_FAILED);  // A in host memory
  cublasDestroy_v2(h);
  cudaFree(d);
}

}  // namespace

namespace {
// As the cuDNN twin: handle creation is set-up work, refused while a stream captures.
TEST(CublasTwin, HandleCreationIsRefusedWhileCapturing) {
  cudaStream_t s;
  SDGEN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  SDGEN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  cublasHandle_t h = nullptr;
  EXPECT_EQ(cublasCreate_v2(&h), CUBLAS_STATUS_NOT_SUPPORTED);
  cudaGraph_t graph = nullptr;
  SDGEN_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  SDGEN_CUDA_CHECK(cudaGraphDestroy(graph));
  ASSERT_EQ(cublasCreate_v2(&h), CUBLAS_STATUS_SUCCESS);
  cublasDestroy_v2(h);
  SDGEN_CUDA_CHECK(cudaStreamDestroy(s));
}
}  // namespace
