// The emulator's cuDNN twin against a direct convolution loop written from the cuDNN docs: NCHW
// and NHWC tensors, KCRS and KRSC filters, padding, stride, dilation, alpha/beta, and the fused
// y = act(alpha1·conv(x) + alpha2·z + bias) with a residual z and ReLU, in fp32 and fp16.
#if SDGEN_HAVE_CUDNN
#include <cuda_fp16.h>
#include <cudnn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/check.h"

namespace {

struct Geo {
  int n, c, h, w, k, r, s, pad, stride, dil;
  int ho() const { return (h + 2 * pad - ((r - 1) * dil + 1)) / stride + 1; }
  int wo() const { return (w + 2 * pad - ((s - 1) * dil + 1)) / stride + 1; }
};

// Logical index helpers: tensors stored per `fmt`, logical coordinates (n, c, h, w).
long long tidx(bool nhwc, int C, int H, int W, int n, int c, int h, int w) {
  return nhwc ? (((long long)n * H + h) * W + w) * C + c : (((long long)n * C + c) * H + h) * W + w;
}

std::vector<float> rnd(size_t n, unsigned seed, bool half) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = half ? __half2float(__float2half_rn(d(g))) : d(g);
  return v;
}

void* upload(const std::vector<float>& v, bool half) {
  void* p = nullptr;
  size_t es = half ? 2 : 4;
  SDGEN_CUDA_CHECK(cudaMalloc(&p, v.size() * es));
  if (half) {
    std::vector<__half> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = __float2half_rn(v[i]);
    SDGEN_CUDA_CHECK(cudaMemcpy(p, h.data(), v.size() * 2, cudaMemcpyHostToDevice));
  } else {
    SDGEN_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  }
  return p;
}
std::vector<float> download(const void* p, size_t n, bool half) {
  std::vector<float> v(n);
  if (half) {
    std::vector<__half> h(n);
    SDGEN_CUDA_CHECK(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; ++i) v[i] = __half2float(h[i]);
  } else {
    SDGEN_CUDA_CHECK(cudaMemcpy(v.data(), p, n * 4, cudaMemcpyDeviceToHost));
  }
  return v;
}

void run(const Geo& g, bool nhwc, bool half, bool fused) {
  cudnnDataType_t t = half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t fmt = nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  int ho = g.ho(), wo = g.wo();
  auto x = rnd((size_t)g.n * g.c * g.h * g.w, 1, half), w = rnd((size_t)g.k * g.c * g.r * g.s, 2, half);
  auto y0 = rnd((size_t)g.n * g.k * ho * wo, 3, half), z = rnd(y0.size(), 4, half),
       bias = rnd((size_t)g.k, 5, half);
  const float alpha = 0.75f, beta = 0.5f, alpha2 = -1.25f;
  // The reference.
  std::vector<float> want(y0.size());
  for (int n = 0; n < g.n; ++n)
    for (int k = 0; k < g.k; ++k)
      for (int p = 0; p < ho; ++p)
        for (int q = 0; q < wo; ++q) {
          double acc = 0;
          for (int c = 0; c < g.c; ++c)
            for (int r = 0; r < g.r; ++r)
              for (int s = 0; s < g.s; ++s) {
                int hi = p * g.stride - g.pad + r * g.dil, wi = q * g.stride - g.pad + s * g.dil;
                if (hi < 0 || hi >= g.h || wi < 0 || wi >= g.w) continue;
                long long widx = nhwc ? (((long long)k * g.r + r) * g.s + s) * g.c + c
                                      : (((long long)k * g.c + c) * g.r + r) * g.s + s;
                acc += (double)x[tidx(nhwc, g.c, g.h, g.w, n, c, hi, wi)] * w[widx];
              }
          long long yi = tidx(nhwc, g.k, ho, wo, n, k, p, q);
          double v = fused ? alpha * acc + alpha2 * z[yi] + bias[k] : alpha * acc + beta * y0[yi];
          if (fused) v = v > 0 ? v : 0;  // ReLU
          want[yi] = (float)v;
        }
  cudnnHandle_t h;
  cudnnTensorDescriptor_t xd, yd, bd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnActivationDescriptor_t ad;
  cudnnCreate(&h);
  cudnnCreateTensorDescriptor(&xd), cudnnCreateTensorDescriptor(&yd), cudnnCreateTensorDescriptor(&bd);
  cudnnCreateFilterDescriptor(&wd), cudnnCreateConvolutionDescriptor(&cd);
  cudnnCreateActivationDescriptor(&ad);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(xd, fmt, t, g.n, g.c, g.h, g.w), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(yd, fmt, t, g.n, g.k, ho, wo), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(bd, fmt, t, 1, g.k, 1, 1), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(wd, t, fmt, g.k, g.c, g.r, g.s), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(cd, g.pad, g.pad, g.stride, g.stride, g.dil, g.dil,
                                            CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetActivationDescriptor(ad, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0),
            CUDNN_STATUS_SUCCESS);
  void *dx = upload(x, half), *dw = upload(w, half), *dy = upload(y0, half), *dz = upload(z, half),
       *db = upload(bias, half);
  auto algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  if (fused)
    ASSERT_EQ(cudnnConvolutionBiasActivationForward(h, &alpha, xd, dx, wd, dw, cd, algo, nullptr, 0,
                                                    &alpha2, yd, dz, bd, db, ad, yd, dy),
              CUDNN_STATUS_SUCCESS);
  else
    ASSERT_EQ(cudnnConvolutionForward(h, &alpha, xd, dx, wd, dw, cd, algo, nullptr, 0, &beta, yd, dy),
              CUDNN_STATUS_SUCCESS);
  auto got = download(dy, y0.size(), half);
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], half ? 4e-3 * (1 + std::fabs(want[i])) : 1e-5) << "element " << i;
  for (void* p : {dx, dw, dy, dz, db}) cudaFree(p);
  cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(yd), cudnnDestroyTensorDescriptor(bd);
  cudnnDestroyFilterDescriptor(wd), cudnnDestroyConvolutionDescriptor(cd);
  cudnnDestroyActivationDescriptor(ad);
  cudnnDestroy(h);
}

TEST(CudnnTwin, ConvolutionLayoutsPaddingStrideDilation) {
  for (bool nhwc : {false, true})
    for (bool half : {false, true})
      for (bool fused : {false, true})
        for (Geo g : {Geo{2, 3, 7, 6, 5, 3, 3, 1, 1, 1}, Geo{1, 4, 9, 8, 3, 3, 2, 2, 2, 2},
                      Geo{2, 5, 5, 5, 4, 1, 1, 0, 2, 1}}) {
          SCOPED_TRACE(testing::Message() << "nhwc " << nhwc << " half " << half << " fused "
                                          << fused << " c " << g.c << " r " << g.r);
          run(g, nhwc, half, fused);
        }
}

TEST(CudnnTwin, FusedIdentityNeedsImplicitPrecompGemm) {
  cudnnHandle_t h;
  cudnnCreate(&h);
  cudnnTensorDescriptor_t xd, yd, bd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnActivationDescriptor_t ad;
  cudnnCreateTensorDescriptor(&xd), cudnnCreateTensorDescriptor(&yd), cudnnCreateTensorDescriptor(&bd);
  cudnnCreateFilterDescriptor(&wd), cudnnCreateConvolutionDescriptor(&cd);
  cudnnCreateActivationDescriptor(&ad);
  cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 1, 1, 1);
  cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 1, 1, 1);
  cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 1, 1, 1);
  cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, 1, 1, 1, 1);
  cudnnSetConvolution2dDescriptor(cd, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
  cudnnSetActivationDescriptor(ad, CUDNN_ACTIVATION_IDENTITY, CUDNN_PROPAGATE_NAN, 0.0);
  float one = 1.f, zero = 0.f;
  void* d = upload({1.f}, false);
  EXPECT_EQ(cudnnConvolutionBiasActivationForward(h, &one, xd, d, wd, d, cd,
                                                  CUDNN_CONVOLUTION_FWD_ALGO_GEMM, nullptr, 0, &zero,
                                                  yd, d, bd, d, ad, yd, d),
            CUDNN_STATUS_NOT_SUPPORTED);
  cudaFree(d);
  cudnnDestroy(h);
}

}  // namespace
#endif  // SDGEN_HAVE_CUDNN
