// Host twins of the cuDNN calls the CUDA backend makes (the v9 "legacy" convolution API), against
// the real cudnn.h declarations. Semantics as documented: 4-d tensor descriptors in NCHW or NHWC
// (or explicit strides), filters KCRS (NCHW) or KRSC (NHWC), zero padding, stride, dilation,
// cross-correlation, y = alpha·conv(x) + beta·y (y unread when beta == 0), and the fused
// y = act(alpha1·conv(x) + alpha2·z + bias) with identity/ReLU, which like the real library
// requires IMPLICIT_PRECOMP_GEMM for the identity activation. fp32 accumulation; fp16 data.
#include <cudnn.h>
#include <cuda_fp16.h>

#include <cmath>
#include <vector>

#include "simt_census.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
  int sn = 0, sc = 0, sh = 0, sw = 0;  // element strides
  bool set = false;
};
struct cudnnFilterStruct {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int k = 0, c = 0, r = 0, s = 0;
  bool set = false;
};
struct cudnnConvolutionStruct {
  int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  bool set = false;
};
struct cudnnActivationStruct {
  cudnnActivationMode_t mode = CUDNN_ACTIVATION_IDENTITY;
};

namespace simt {
bool is_device_pointer(const void* p);
}

namespace {

bool type_ok(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF; }
float load(const void* p, cudnnDataType_t t, long long i) {
  return t == CUDNN_DATA_FLOAT ? static_cast<const float*>(p)[i]
                               : __half2float(static_cast<const __half*>(p)[i]);
}
void store(void* p, cudnnDataType_t t, long long i, float v) {
  if (t == CUDNN_DATA_FLOAT)
    static_cast<float*>(p)[i] = v;
  else
    static_cast<__half*>(p)[i] = __float2half_rn(v);
}
long long tensor_index(const cudnnTensorStruct& d, int n, int c, int h, int w) {
  return (long long)n * d.sn + (long long)c * d.sc + (long long)h * d.sh + (long long)w * d.sw;
}
long long filter_index(const cudnnFilterStruct& f, int k, int c, int r, int s) {
  if (f.format == CUDNN_TENSOR_NHWC) return (((long long)k * f.r + r) * f.s + s) * f.c + c;
  return (((long long)k * f.c + c) * f.r + r) * f.s + s;
}
int out_dim(int in, int pad, int filt, int dil, int stride) {
  return (in + 2 * pad - ((filt - 1) * dil + 1)) / stride + 1;
}

cudnnStatus_t check(const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                    const cudnnConvolutionStruct* cv, const cudnnTensorStruct* y) {
  if (!x || !w || !cv || !y || !x->set || !w->set || !cv->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
  if (x->c != w->c || y->c != w->k || x->n != y->n) return CUDNN_STATUS_BAD_PARAM;
  if (y->h != out_dim(x->h, cv->pad_h, w->r, cv->dil_h, cv->u) ||
      y->w != out_dim(x->w, cv->pad_w, w->s, cv->dil_w, cv->v))
    return CUDNN_STATUS_BAD_PARAM;
  if (x->type != w->type || x->type != y->type) return CUDNN_STATUS_BAD_PARAM;
  return CUDNN_STATUS_SUCCESS;
}

// fp32 dot product with eight partial sums (vectorizable; cuDNN reorders its sums too).
float dot(const float* a, const float* b, int k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int p = 0;
  for (; p + 8 <= k; p += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[p + l] * b[p + l];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; p < k; ++p) s += a[p] * b[p];
  return s;
}

// Reports one convolution call to the census (FLOPs 2·N·P·Q·K·R·S·C; bytes: x, w, y, and z or y
// read back when they contribute); true when the call must not run (a dry census).
bool census_conv(const char* call, const cudnnTensorStruct& xd, const cudnnFilterStruct& wd,
                 const cudnnTensorStruct& yd, bool reads_y) {
  const double es = xd.type == CUDNN_DATA_FLOAT ? 4.0 : 2.0;
  const double y = (double)yd.n * yd.c * yd.h * yd.w;
  const double bytes = es * ((double)xd.n * xd.c * xd.h * xd.w + (double)wd.k * wd.c * wd.r * wd.s +
                             y * (reads_y ? 2 : 1));
  simt::census::on_library(call, 2.0 * y * wd.r * wd.s * wd.c, bytes, xd.type == CUDNN_DATA_HALF,
                           simt::replaying());
  return simt::census::dry();
}

// acc[n,k,p,q] of the convolution, in fp32, as a dense NKPQ array.
std::vector<float> convolve(const cudnnTensorStruct& xd, const void* x, const cudnnFilterStruct& wd,
                            const void* w, const cudnnConvolutionStruct& cv,
                            const cudnnTensorStruct& yd) {
  // Widen the filter once: [k][r][s][c] so the inner loop runs over contiguous channels.
  std::vector<float> wf((size_t)wd.k * wd.r * wd.s * wd.c);
  for (int k = 0; k < wd.k; ++k)
    for (int r = 0; r < wd.r; ++r)
      for (int s = 0; s < wd.s; ++s)
        for (int c = 0; c < wd.c; ++c) {
          // Convolution mode flips the filter; cross-correlation (what frameworks call conv) not.
          int rr = cv.mode == CUDNN_CONVOLUTION ? wd.r - 1 - r : r;
          int ss = cv.mode == CUDNN_CONVOLUTION ? wd.s - 1 - s : s;
          wf[(((size_t)k * wd.r + r) * wd.s + s) * wd.c + c] = load(w, wd.type, filter_index(wd, k, c, rr, ss));
        }
  std::vector<float> xrow((size_t)xd.c);
  std::vector<float> acc((size_t)yd.n * yd.c * yd.h * yd.w, 0.f);
  for (int n = 0; n < yd.n; ++n)
    for (int p = 0; p < yd.h; ++p)
      for (int q = 0; q < yd.w; ++q)
        for (int r = 0; r < wd.r; ++r) {
          int h = p * cv.u - cv.pad_h + r * cv.dil_h;
          if (h < 0 || h >= xd.h) continue;
          for (int s = 0; s < wd.s; ++s) {
            int wi = q * cv.v - cv.pad_w + s * cv.dil_w;
            if (wi < 0 || wi >= xd.w) continue;
            for (int c = 0; c < xd.c; ++c) xrow[c] = load(x, xd.type, tensor_index(xd, n, c, h, wi));
            for (int k = 0; k < wd.k; ++k) {
              const float* f = &wf[(((size_t)k * wd.r + r) * wd.s + s) * wd.c];
              float sum = dot(xrow.data(), f, xd.c);
              acc[(((size_t)n * yd.c + k) * yd.h + p) * yd.w + q] += sum;
            }
          }
        }
  return acc;
}

}  // namespace

cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
  *h = new cudnnContext;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
  delete h;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  if (!h) return CUDNN_STATUS_BAD_PARAM;
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}
const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS (emulated)";
  }
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  *d = new cudnnTensorStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t d, cudnnDataType_t t, int n,
                                           int c, int h, int w, int sn, int sc, int sh, int sw) {
  if (!d || !type_ok(t) || n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnTensorStruct{t, n, c, h, w, sn, sc, sh, sw, true};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f,
                                         cudnnDataType_t t, int n, int c, int h, int w) {
  if (f == CUDNN_TENSOR_NHWC) return cudnnSetTensor4dDescriptorEx(d, t, n, c, h, w, h * w * c, 1, w * c, c);
  if (f == CUDNN_TENSOR_NCHW) return cudnnSetTensor4dDescriptorEx(d, t, n, c, h, w, c * h * w, h * w, w, 1);
  return CUDNN_STATUS_NOT_SUPPORTED;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  *d = new cudnnFilterStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t,
                                         cudnnTensorFormat_t f, int k, int c, int h, int w) {
  if (!d || !type_ok(t) || (f != CUDNN_TENSOR_NCHW && f != CUDNN_TENSOR_NHWC) || k <= 0 || c <= 0 ||
      h <= 0 || w <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnFilterStruct{t, f, k, c, h, w, true};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  *d = new cudnnConvolutionStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w,
                                              int u, int v, int dil_h, int dil_w,
                                              cudnnConvolutionMode_t mode, cudnnDataType_t compute) {
  if (!d || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dil_h <= 0 || dil_w <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v, d->dil_h = dil_h, d->dil_w = dil_w;
  d->mode = mode;
  d->compute = compute;
  d->set = true;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  d->math = m;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t* d) {
  *d = new cudnnActivationStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d, cudnnActivationMode_t m,
                                           cudnnNanPropagation_t, double) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  if (m != CUDNN_ACTIVATION_IDENTITY && m != CUDNN_ACTIVATION_RELU) return CUDNN_STATUS_NOT_SUPPORTED;
  d->mode = m;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t cv,
                                                     const cudnnTensorDescriptor_t y, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf) {
  if (!h || requested < 1) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = check(x, w, cv, y);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  perf[0] = cudnnConvolutionFwdAlgoPerf_t{};
  perf[0].algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  perf[0].status = CUDNN_STATUS_SUCCESS;
  perf[0].mathType = cv->math;
  *returned = 1;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t cv,
                                                      const cudnnTensorDescriptor_t y,
                                                      cudnnConvolutionFwdAlgo_t, size_t* bytes) {
  if (!h) return CUDNN_STATUS_BAD_PARAM;
  *bytes = 0;
  return check(x, w, cv, y);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha,
                                      const cudnnTensorDescriptor_t xd, const void* x,
                                      const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t cv, cudnnConvolutionFwdAlgo_t algo,
                                      void*, size_t, const void* beta,
                                      const cudnnTensorDescriptor_t yd, void* y) {
  if (!h) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = check(xd, wd, cv, yd);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  if (!simt::is_device_pointer(x) || !simt::is_device_pointer(w) || !simt::is_device_pointer(y))
    return CUDNN_STATUS_EXECUTION_FAILED;
  float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  if (simt::capturing()) {
    // A graph node with copies of the descriptors (the caller may destroy its own) and scalars.
    cudnnTensorStruct xs = *xd, ys = *yd;
    cudnnFilterStruct fs = *wd;
    cudnnConvolutionStruct cs = *cv;
    cudnnConvolutionFwdAlgo_t al = algo;
    simt::capture([=]() mutable {
      cudnnConvolutionForward(h, &a, &xs, x, &fs, w, &cs, al, nullptr, 0, &b, &ys, y);
    });
    return CUDNN_STATUS_SUCCESS;
  }
  if (census_conv("cudnnConvolutionForward", *xd, *wd, *yd, b != 0.f)) return CUDNN_STATUS_SUCCESS;
  std::vector<float> acc = convolve(*xd, x, *wd, w, *cv, *yd);
  size_t i = 0;
  for (int n = 0; n < yd->n; ++n)
    for (int k = 0; k < yd->c; ++k)
      for (int p = 0; p < yd->h; ++p)
        for (int q = 0; q < yd->w; ++q, ++i) {
          long long yi = tensor_index(*yd, n, k, p, q);
          float v = a * acc[i];
          if (b != 0.f) v += b * load(y, yd->type, yi);
          store(y, yd->type, yi, v);
        }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBiasActivationForward(
    cudnnHandle_t h, const void* alpha1, const cudnnTensorDescriptor_t xd, const void* x,
    const cudnnFilterDescriptor_t wd, const void* w, const cudnnConvolutionDescriptor_t cv,
    cudnnConvolutionFwdAlgo_t algo, void*, size_t, const void* alpha2,
    const cudnnTensorDescriptor_t zd, const void* z, const cudnnTensorDescriptor_t bd,
    const void* bias, const cudnnActivationDescriptor_t act, const cudnnTensorDescriptor_t yd,
    void* y) {
  if (!h || !act || !zd || !bd || !zd->set || !bd->set) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = check(xd, wd, cv, yd);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  if (act->mode == CUDNN_ACTIVATION_IDENTITY && algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM)
    return CUDNN_STATUS_NOT_SUPPORTED;
  if (zd->n != yd->n || zd->c != yd->c || zd->h != yd->h || zd->w != yd->w)
    return CUDNN_STATUS_BAD_PARAM;
  if (bd->n != 1 || bd->c != yd->c || bd->h != 1 || bd->w != 1) return CUDNN_STATUS_BAD_PARAM;
  for (const void* p : {x, w, z, bias, static_cast<const void*>(y)})
    if (!simt::is_device_pointer(p)) return CUDNN_STATUS_EXECUTION_FAILED;
  float a1 = *static_cast<const float*>(alpha1), a2 = *static_cast<const float*>(alpha2);
  if (simt::capturing()) {
    cudnnTensorStruct xs = *xd, ys = *yd, zs = *zd, bs = *bd;
    cudnnFilterStruct fs = *wd;
    cudnnConvolutionStruct cs = *cv;
    cudnnActivationStruct as = *act;
    simt::capture([=]() mutable {
      cudnnConvolutionBiasActivationForward(h, &a1, &xs, x, &fs, w, &cs, algo, nullptr, 0, &a2, &zs, z, &bs, bias,
                                            &as, &ys, y);
    });
    return CUDNN_STATUS_SUCCESS;
  }
  if (census_conv("cudnnConvolutionBiasActivationForward", *xd, *wd, *yd, a2 != 0.f))
    return CUDNN_STATUS_SUCCESS;
  std::vector<float> acc = convolve(*xd, x, *wd, w, *cv, *yd);
  size_t i = 0;
  for (int n = 0; n < yd->n; ++n)
    for (int k = 0; k < yd->c; ++k) {
      float bk = load(bias, bd->type, tensor_index(*bd, 0, k, 0, 0));
      for (int p = 0; p < yd->h; ++p)
        for (int q = 0; q < yd->w; ++q, ++i) {
          float v = a1 * acc[i] + bk;
          // z (the residual) is read only when it contributes, as y may alias it.
          if (a2 != 0.f) v += a2 * load(z, zd->type, tensor_index(*zd, n, k, p, q));
          if (act->mode == CUDNN_ACTIVATION_RELU) v = v > 0.f ? v : 0.f;
          store(y, yd->type, tensor_index(*yd, n, k, p, q), v);
        }
    }
  return CUDNN_STATUS_SUCCESS;
}
