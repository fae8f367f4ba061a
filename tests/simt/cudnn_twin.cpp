// Host twins of the cuDNN calls the CUDA backend makes, against the real cudnn.h declarations.
// Two APIs. The v9 "legacy" convolution API: 4-d tensor descriptors in NCHW or NHWC (or explicit
// strides), filters KCRS (NCHW) or KRSC (NHWC), zero padding, stride, dilation,
// cross-correlation, y = alpha·conv(x) + beta·y (y unread when beta == 0), and the fused
// y = act(alpha1·conv(x) + alpha2·z + bias) with identity/ReLU, which like the real library
// requires IMPLICIT_PRECOMP_GEMM for the identity activation. And the graph (backend descriptor)
// API for the graphs the backend builds: a convolution forward, optionally followed by a pointwise
// add of a broadcast tensor (the bias), through heuristics, engine configs, execution plans and
// variant packs. fp32 accumulation; fp16 data.
//
// Refusals (SIMT_REFUSE, simt_refuse.h), for the backend's fallback paths:
//   cudnn-fusion            the heuristics offer no engine config for a graph with a pointwise op
//                           (only the bare convolution is supported);
//   cudnn-bias-fusion-only  no engine config for a graph with two pointwise adds (conv + bias +
//                           residual or time embedding); one add is still fused;
//   cudnn-finalize          finalizing an execution plan for engine 0 fails (NOT_SUPPORTED);
//   cudnn-nondeterministic  engine 0 adds CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC to its notes;
//   cudnn-workspace         engine 0 needs 1 GiB of workspace (engine config and plan).
#include <cudnn.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "simt_census.h"
#include "simt_refuse.h"

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
  // Explicit element strides (the graph API's filters); used instead of `format` when set.
  bool strided = false;
  long long sk = 0, sc = 0, sr = 0, ss = 0;
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

bool type_ok(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16; }
float load(const void* p, cudnnDataType_t t, long long i) {
  if (t == CUDNN_DATA_BFLOAT16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return t == CUDNN_DATA_FLOAT ? static_cast<const float*>(p)[i]
                               : __half2float(static_cast<const __half*>(p)[i]);
}
void store(void* p, cudnnDataType_t t, long long i, float v) {
  if (t == CUDNN_DATA_FLOAT)
    static_cast<float*>(p)[i] = v;
  else if (t == CUDNN_DATA_BFLOAT16)
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else
    static_cast<__half*>(p)[i] = __float2half_rn(v);
}
long long tensor_index(const cudnnTensorStruct& d, int n, int c, int h, int w) {
  return (long long)n * d.sn + (long long)c * d.sc + (long long)h * d.sh + (long long)w * d.sw;
}
long long filter_index(const cudnnFilterStruct& f, int k, int c, int r, int s) {
  if (f.strided) return (long long)k * f.sk + (long long)c * f.sc + (long long)r * f.sr + (long long)s * f.ss;
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
// read back when they contribute, and `extra` elements a fused add reads); true when the call must
// not run (a dry census).
bool census_conv(const char* call, const cudnnTensorStruct& xd, const cudnnFilterStruct& wd,
                 const cudnnTensorStruct& yd, bool reads_y, double extra = 0) {
  const double es = xd.type == CUDNN_DATA_FLOAT ? 4.0 : 2.0;
  const double y = (double)yd.n * yd.c * yd.h * yd.w;
  const double bytes = es * ((double)xd.n * xd.c * xd.h * xd.w + (double)wd.k * wd.c * wd.r * wd.s +
                             y * (reads_y ? 2 : 1) + extra);
  simt::census::on_library(call, 2.0 * y * wd.r * wd.s * wd.c, bytes, xd.type == CUDNN_DATA_HALF || xd.type == CUDNN_DATA_BFLOAT16,
                           simt::replaying());
  return simt::census::dry();
}

// fp32 rounded to TF32 (10 mantissa bits, nearest even), as tensor cores read fp32 operands.
float to_tf32(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
  std::memcpy(&v, &u, 4);
  return v;
}

// acc[n,k,p,q] of the convolution, in fp32, as a dense NKPQ array. `tf32`: the operands are
// rounded to TF32 first (what a tensor-core engine does to fp32 data).
std::vector<float> convolve(const cudnnTensorStruct& xd, const void* x, const cudnnFilterStruct& wd,
                            const void* w, const cudnnConvolutionStruct& cv,
                            const cudnnTensorStruct& yd, bool tf32 = false) {
  // Widen the filter once: [k][r][s][c] so the inner loop runs over contiguous channels.
  std::vector<float> wf((size_t)wd.k * wd.r * wd.s * wd.c);
  for (int k = 0; k < wd.k; ++k)
    for (int r = 0; r < wd.r; ++r)
      for (int s = 0; s < wd.s; ++s)
        for (int c = 0; c < wd.c; ++c) {
          // Convolution mode flips the filter; cross-correlation (what frameworks call conv) not.
          int rr = cv.mode == CUDNN_CONVOLUTION ? wd.r - 1 - r : r;
          int ss = cv.mode == CUDNN_CONVOLUTION ? wd.s - 1 - s : s;
          float v = load(w, wd.type, filter_index(wd, k, c, rr, ss));
          wf[(((size_t)k * wd.r + r) * wd.s + s) * wd.c + c] = tf32 ? to_tf32(v) : v;
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
            for (int c = 0; c < xd.c; ++c) {
              float v = load(x, xd.type, tensor_index(xd, n, c, h, wi));
              xrow[c] = tf32 ? to_tf32(v) : v;
            }
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

// The library's version: 9.10.0, or SIMT_CUDNN_VERSION (cudnnGetVersion's number) to play an older one.
size_t cudnnGetVersion(void) {
  const char* v = std::getenv("SIMT_CUDNN_VERSION");
  return v ? (size_t)std::strtoull(v, nullptr, 10) : 91000;
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
  if (simt::setup_refused_in_capture("cudnnCreate")) return CUDNN_STATUS_EXECUTION_FAILED;
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
    case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER: return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED: return "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED";
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
  *d = cudnnFilterStruct{t, f, k, c, h, w, true, false, 0, 0, 0, 0};
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
  if (simt::setup_refused_in_capture("cudnnGetConvolutionForwardAlgorithm_v7")) return CUDNN_STATUS_EXECUTION_FAILED;
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

// ---------------------------------------------------------------------------------------------
// The graph (backend descriptor) API. A descriptor stores what cudnnBackendSetAttribute gives it
// untouched; cudnnBackendFinalize checks the attributes the documentation requires (present, of
// the documented type and count) and derives a self-contained value from them, so later
// descriptors copy values, never point into ones the caller may destroy. Supported: tensors,
// convolutions, pointwise descriptors, convolution-forward and pointwise operations, operation
// graphs of a convolution optionally followed by a pointwise add, heuristics, engines, engine
// configs, execution plans, variant packs and device properties.
//
// The engines: for a supported graph the heuristics offer two, so that the caller's choice is
// observable. Engine 0 is "tensor core" (numerical note CUDNN_NUMERICAL_NOTE_TENSOR_CORE): fp32
// operands are rounded to TF32 as real tensor-core engines do; fp16 ones are exact either way.
// Engine 1 is plain FMA (no notes). Both accumulate in fp32 and need a small workspace, which
// they fill (so that a missing or short workspace shows).

namespace {

constexpr uint32_t kMagic = 0x5d6b3a11;
constexpr int64_t kEngines = 2;

struct BTensor {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  std::vector<int64_t> dims, strides;
  int64_t uid = 0, align = 0;
  bool virt = false;
};
struct BConv {
  cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  std::vector<int64_t> pre, post, stride, dil;
};
struct BPointwise {
  cudnnPointwiseMode_t mode = CUDNN_POINTWISE_ADD;
  cudnnDataType_t prec = CUDNN_DATA_FLOAT;
};
struct BOp {
  bool conv = false;  // else pointwise
  BTensor x, w, y;    // pointwise: w is the B operand
  BConv cv;
  BPointwise pw;
  bool has_b = false;
  float alpha = 1.f, beta = 0.f;  // conv: alpha/beta; pointwise: alpha1/alpha2
};
// A validated graph: the convolution, and the chain of adds that consumes its (virtual) output:
// none, one (the bias) or two (the bias, then a residual or a per-image channel vector).
struct BGraph {
  BOp conv;
  std::vector<BOp> adds;
  const BTensor& out() const { return adds.empty() ? conv.y : adds.back().y; }
};

struct Attr {
  cudnnBackendAttributeType_t type;
  int64_t count;
  std::vector<unsigned char> bytes;
};

struct BDesc {
  uint32_t magic = kMagic;
  cudnnBackendDescriptorType_t type;
  bool finalized = false;
  std::map<int, Attr> attrs;
  // Values derived at finalize (which ones depends on `type`).
  BTensor tensor;
  BConv cv;
  BPointwise pw;
  BOp op;
  std::shared_ptr<const BGraph> graph;  // op graph, heuristics, engine, engine config, plan
  bool graph_supported = false;
  int64_t engine = -1;                  // engine, engine config, plan
  int64_t workspace = 0;                // engine config, plan
  cudnnHandle_t handle = nullptr;       // device properties
  std::vector<int64_t> uids;            // variant pack
  std::vector<void*> ptrs;
  void* ws = nullptr;
};

BDesc* as_desc(cudnnBackendDescriptor_t d) {
  BDesc* b = static_cast<BDesc*>(d);
  return b && b->magic == kMagic ? b : nullptr;
}

size_t element_size(cudnnBackendAttributeType_t t) {
  switch (t) {
    case CUDNN_TYPE_HANDLE: return sizeof(cudnnHandle_t);
    case CUDNN_TYPE_DATA_TYPE: return sizeof(cudnnDataType_t);
    case CUDNN_TYPE_BOOLEAN: return sizeof(bool);
    case CUDNN_TYPE_INT64: return sizeof(int64_t);
    case CUDNN_TYPE_FLOAT: return sizeof(float);
    case CUDNN_TYPE_DOUBLE: return sizeof(double);
    case CUDNN_TYPE_VOID_PTR: return sizeof(void*);
    case CUDNN_TYPE_CONVOLUTION_MODE: return sizeof(cudnnConvolutionMode_t);
    case CUDNN_TYPE_HEUR_MODE: return sizeof(cudnnBackendHeurMode_t);
    case CUDNN_TYPE_NUMERICAL_NOTE: return sizeof(cudnnBackendNumericalNote_t);
    case CUDNN_TYPE_POINTWISE_MODE: return sizeof(cudnnPointwiseMode_t);
    case CUDNN_TYPE_BACKEND_DESCRIPTOR: return sizeof(cudnnBackendDescriptor_t);
    case CUDNN_TYPE_INT32: return sizeof(int32_t);
    default: return 0;
  }
}

// Reading attributes at finalize: each returns false (→ CUDNN_STATUS_BAD_PARAM) when the attribute
// is required but missing, or set with another type or an unexpected count.
const Attr* find(const BDesc& d, cudnnBackendAttributeName_t n) {
  auto it = d.attrs.find((int)n);
  return it == d.attrs.end() ? nullptr : &it->second;
}
template <class T>
bool get_one(const BDesc& d, cudnnBackendAttributeName_t n, cudnnBackendAttributeType_t t, T* out,
             bool required = true) {
  const Attr* a = find(d, n);
  if (!a) return !required;
  if (a->type != t || a->count != 1) return false;
  std::memcpy(out, a->bytes.data(), sizeof(T));
  return true;
}
bool get_ints(const BDesc& d, cudnnBackendAttributeName_t n, std::vector<int64_t>* out) {
  const Attr* a = find(d, n);
  if (!a || a->type != CUDNN_TYPE_INT64 || a->count < 1) return false;
  out->resize((size_t)a->count);
  std::memcpy(out->data(), a->bytes.data(), a->bytes.size());
  return true;
}
// A scaling factor given as FLOAT or DOUBLE (both documented); `def` when optional and absent.
bool get_scale(const BDesc& d, cudnnBackendAttributeName_t n, float* out, bool required, float def) {
  const Attr* a = find(d, n);
  if (!a) {
    *out = def;
    return !required;
  }
  if (a->count != 1) return false;
  if (a->type == CUDNN_TYPE_FLOAT) return std::memcpy(out, a->bytes.data(), 4), true;
  if (a->type != CUDNN_TYPE_DOUBLE) return false;
  double v;
  std::memcpy(&v, a->bytes.data(), 8);
  *out = (float)v;
  return true;
}
// A finalized descriptor of type `t` set as attribute `n`.
const BDesc* get_desc(const BDesc& d, cudnnBackendAttributeName_t n, cudnnBackendDescriptorType_t t) {
  cudnnBackendDescriptor_t p = nullptr;
  if (!get_one(d, n, CUDNN_TYPE_BACKEND_DESCRIPTOR, &p)) return nullptr;
  const BDesc* b = as_desc(p);
  return b && b->type == t && b->finalized ? b : nullptr;
}

// The legacy structs the direct loop reads, from graph-API tensors ([N,C,H,W] dims with strides).
cudnnTensorStruct legacy_tensor(const BTensor& t) {
  const auto& d = t.dims;
  const auto& s = t.strides;
  return cudnnTensorStruct{t.type, (int)d[0], (int)d[1], (int)d[2], (int)d[3],
                           (int)s[0], (int)s[1], (int)s[2], (int)s[3], true};
}
cudnnFilterStruct legacy_filter(const BTensor& t) {
  const auto& d = t.dims;
  const auto& s = t.strides;
  return cudnnFilterStruct{t.type, CUDNN_TENSOR_NCHW, (int)d[0], (int)d[1], (int)d[2], (int)d[3], true,
                           true, s[0], s[1], s[2], s[3]};
}
cudnnConvolutionStruct legacy_conv(const BConv& c) {
  cudnnConvolutionStruct s;
  s.pad_h = (int)c.pre[0], s.pad_w = (int)c.pre[1];
  s.u = (int)c.stride[0], s.v = (int)c.stride[1];
  s.dil_h = (int)c.dil[0], s.dil_w = (int)c.dil[1];
  s.mode = c.mode;
  s.compute = c.comp;
  s.set = true;
  return s;
}

cudnnStatus_t finalize_tensor(BDesc& d) {
  BTensor t;
  if (!get_one(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &t.type) ||
      !get_ints(d, CUDNN_ATTR_TENSOR_DIMENSIONS, &t.dims) || !get_ints(d, CUDNN_ATTR_TENSOR_STRIDES, &t.strides) ||
      !get_one(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &t.uid) ||
      !get_one(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &t.align) ||
      !get_one(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &t.virt, false))
    return CUDNN_STATUS_BAD_PARAM;
  if (t.dims.size() != t.strides.size() || t.dims.size() > 8 || t.align <= 0) return CUDNN_STATUS_BAD_PARAM;
  for (size_t i = 0; i < t.dims.size(); ++i)
    if (t.dims[i] <= 0 || t.strides[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
  if (!type_ok(t.type)) return CUDNN_STATUS_NOT_SUPPORTED;
  d.tensor = t;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_conv(BDesc& d) {
  BConv c;
  int64_t nd = 0;
  if (!get_one(d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &c.comp) ||
      !get_one(d, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &c.mode) ||
      !get_one(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &nd) ||
      !get_ints(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, &c.dil) ||
      !get_ints(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, &c.stride) ||
      !get_ints(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, &c.pre) ||
      !get_ints(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, &c.post))
    return CUDNN_STATUS_BAD_PARAM;
  for (const auto* v : {&c.dil, &c.stride, &c.pre, &c.post})
    if ((int64_t)v->size() != nd) return CUDNN_STATUS_BAD_PARAM;
  if (nd != 2) return CUDNN_STATUS_NOT_SUPPORTED;  // the backend's convolutions are 2-d
  for (int i = 0; i < 2; ++i)
    if (c.dil[i] < 1 || c.stride[i] < 1 || c.pre[i] < 0 || c.post[i] < 0) return CUDNN_STATUS_BAD_PARAM;
  if (c.mode != CUDNN_CONVOLUTION && c.mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
  d.cv = c;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_pointwise(BDesc& d) {
  BPointwise p;
  if (!get_one(d, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &p.mode) ||
      !get_one(d, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &p.prec))
    return CUDNN_STATUS_BAD_PARAM;
  d.pw = p;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_conv_op(BDesc& d) {
  const BDesc* x = get_desc(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const BDesc* w = get_desc(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const BDesc* y = get_desc(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const BDesc* c =
      get_desc(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  BOp op;
  op.conv = true;
  if (!x || !w || !y || !c || !get_scale(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, &op.alpha, true, 1.f) ||
      !get_scale(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, &op.beta, true, 0.f))
    return CUDNN_STATUS_BAD_PARAM;
  op.x = x->tensor, op.w = w->tensor, op.y = y->tensor, op.cv = c->cv;
  if (op.x.dims.size() != 4 || op.w.dims.size() != 4 || op.y.dims.size() != 4) return CUDNN_STATUS_NOT_SUPPORTED;
  const auto &xd = op.x.dims, &wd = op.w.dims, &yd = op.y.dims;
  if (op.x.virt || op.w.virt || xd[1] != wd[1] || yd[0] != xd[0] || yd[1] != wd[0]) return CUDNN_STATUS_BAD_PARAM;
  for (int i = 0; i < 2; ++i) {
    const int64_t ext = (wd[2 + i] - 1) * op.cv.dil[i] + 1;
    if (yd[2 + i] != (xd[2 + i] + op.cv.pre[i] + op.cv.post[i] - ext) / op.cv.stride[i] + 1)
      return CUDNN_STATUS_BAD_PARAM;
  }
  if (op.x.type != op.w.type) return CUDNN_STATUS_BAD_PARAM;
  d.op = op;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_pointwise_op(BDesc& d) {
  const BDesc* p = get_desc(d, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  const BDesc* x = get_desc(d, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const BDesc* y = get_desc(d, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  BOp op;
  if (!p || !x || !y || !get_scale(d, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, &op.alpha, false, 1.f) ||
      !get_scale(d, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, &op.beta, false, 1.f))
    return CUDNN_STATUS_BAD_PARAM;
  op.pw = p->pw, op.x = x->tensor, op.y = y->tensor;
  if (find(d, CUDNN_ATTR_OPERATION_POINTWISE_BDESC)) {
    const BDesc* b = get_desc(d, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    if (!b) return CUDNN_STATUS_BAD_PARAM;
    op.w = b->tensor;
    op.has_b = true;
  }
  // Binary modes (ADD is the one the twin runs) need B; B broadcasts (each extent that of X or 1).
  if (op.pw.mode == CUDNN_POINTWISE_ADD && !op.has_b) return CUDNN_STATUS_BAD_PARAM;
  if (op.x.dims != op.y.dims) return CUDNN_STATUS_BAD_PARAM;
  if (op.has_b) {
    if (op.w.dims.size() != op.x.dims.size()) return CUDNN_STATUS_BAD_PARAM;
    for (size_t i = 0; i < op.x.dims.size(); ++i)
      if (op.w.dims[i] != op.x.dims[i] && op.w.dims[i] != 1) return CUDNN_STATUS_BAD_PARAM;
  }
  d.op = op;
  return CUDNN_STATUS_SUCCESS;
}

// An operation graph: validated for consistency (unique UIDs, every virtual tensor produced and
// consumed inside the graph); `supported` says whether the twin has engines for it.
cudnnStatus_t finalize_graph(BDesc& d) {
  const Attr* a = find(d, CUDNN_ATTR_OPERATIONGRAPH_OPS);
  if (!a || a->type != CUDNN_TYPE_BACKEND_DESCRIPTOR || a->count < 1) return CUDNN_STATUS_BAD_PARAM;
  std::vector<BOp> ops;
  for (int64_t i = 0; i < a->count; ++i) {
    cudnnBackendDescriptor_t p;
    std::memcpy(&p, a->bytes.data() + i * sizeof(p), sizeof(p));
    const BDesc* o = as_desc(p);
    if (!o || !o->finalized ||
        (o->type != CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR &&
         o->type != CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR))
      return CUDNN_STATUS_BAD_PARAM;
    ops.push_back(o->op);
  }
  // One tensor per UID; each virtual one written by exactly one op and read by another.
  std::map<int64_t, const BTensor*> by_uid;
  std::map<int64_t, int> written, read;
  for (const BOp& o : ops) {
    std::vector<const BTensor*> ins{&o.x};
    if (o.conv || o.has_b) ins.push_back(&o.w);
    for (const BTensor* t : ins) ++read[t->uid];
    ++written[o.y.uid];
    ins.push_back(&o.y);
    for (const BTensor* t : ins) {
      auto [it, fresh] = by_uid.emplace(t->uid, t);
      if (!fresh && (it->second->dims != t->dims || it->second->strides != t->strides ||
                     it->second->type != t->type || it->second->virt != t->virt))
        return CUDNN_STATUS_BAD_PARAM;
    }
  }
  for (const auto& [uid, t] : by_uid)
    if (written[uid] > 1 || (t->virt && (written[uid] != 1 || read[uid] < 1))) return CUDNN_STATUS_BAD_PARAM;
  auto g = std::make_shared<BGraph>();
  bool ok = false;
  const BOp* conv = nullptr;
  int convs = 0;
  for (const BOp& o : ops)
    if (o.conv) conv = &o, ++convs;
  if (convs == 1 && ops.size() <= 3) {
    g->conv = *conv;
    // conv → add(·, broadcast B) → add(·, broadcast B'): each link reads the previous one's
    // virtual output, only the last output is real, no B is virtual, the conv has no beta.
    ok = true;
    const BTensor* prev = &conv->y;
    while (ok && g->adds.size() + 1 < ops.size()) {
      const BOp* next = nullptr;
      for (const BOp& o : ops)
        if (!o.conv && o.x.uid == prev->uid) next = &o;
      ok = next && prev->virt && next->pw.mode == CUDNN_POINTWISE_ADD && !next->w.virt;
      if (!ok) break;
      g->adds.push_back(*next);
      prev = &next->y;
    }
    ok = ok && !prev->virt && (g->adds.empty() || conv->beta == 0.f);
  }
  // The twin's engines: fp32 or fp16 data in and out, fp32 compute.
  if (ok) {
    ok = g->conv.cv.comp == CUDNN_DATA_FLOAT && g->conv.x.type == g->out().type;
    for (const BOp& a : g->adds) ok = ok && a.pw.prec == CUDNN_DATA_FLOAT;
  }
  d.graph = g;
  d.graph_supported = ok;
  return CUDNN_STATUS_SUCCESS;
}

int64_t engine_workspace(const BGraph& g, int64_t engine) {
  if (engine == 0 && simt::refused("cudnn-workspace")) return int64_t(1) << 30;
  return 64 * g.conv.y.dims[1];
}

// The engines the heuristics offer for a graph: none where it is unsupported or a refusal knob
// withholds its fusion.
std::vector<int64_t> offered_engines(const BDesc& heur) {
  if (!heur.graph_supported) return {};
  const size_t adds = heur.graph->adds.size();
  if ((adds > 0 && simt::refused("cudnn-fusion")) || (adds > 1 && simt::refused("cudnn-bias-fusion-only")))
    return {};
  return {0, 1};
}

std::atomic<int64_t> g_last_engine{-1};

cudnnStatus_t finalize_engine(BDesc& d) {
  const BDesc* g = get_desc(d, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  int64_t idx = -1;
  if (!g || !get_one(d, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, &idx)) return CUDNN_STATUS_BAD_PARAM;
  if (!g->graph_supported || idx < 0 || idx >= kEngines) return CUDNN_STATUS_NOT_SUPPORTED;
  d.graph = g->graph, d.engine = idx;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_engine_cfg(BDesc& d) {
  const BDesc* e = get_desc(d, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  if (!e) return CUDNN_STATUS_BAD_PARAM;
  d.graph = e->graph, d.engine = e->engine, d.workspace = engine_workspace(*e->graph, e->engine);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_heur(BDesc& d) {
  const BDesc* g = get_desc(d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  cudnnBackendHeurMode_t mode;
  if (!g || !get_one(d, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode)) return CUDNN_STATUS_BAD_PARAM;
  if (mode != CUDNN_HEUR_MODE_INSTANT && mode != CUDNN_HEUR_MODE_A && mode != CUDNN_HEUR_MODE_B &&
      mode != CUDNN_HEUR_MODE_FALLBACK)
    return CUDNN_STATUS_BAD_PARAM;
  if (find(d, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP) &&
      !get_desc(d, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR))
    return CUDNN_STATUS_BAD_PARAM;
  d.graph = g->graph, d.graph_supported = g->graph_supported;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_plan(BDesc& d) {
  const BDesc* c = get_desc(d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
  if (!c) return CUDNN_STATUS_BAD_PARAM;
  if (find(d, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP) &&
      !get_desc(d, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR))
    return CUDNN_STATUS_BAD_PARAM;
  if (c->engine == 0 && simt::refused("cudnn-finalize")) return CUDNN_STATUS_NOT_SUPPORTED;
  d.graph = c->graph, d.engine = c->engine, d.workspace = c->workspace;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_variant_pack(BDesc& d) {
  const Attr* u = find(d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS);
  const Attr* p = find(d, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS);
  if (!u || !p || u->type != CUDNN_TYPE_INT64 || p->type != CUDNN_TYPE_VOID_PTR || u->count != p->count)
    return CUDNN_STATUS_BAD_PARAM;
  void* ws = nullptr;
  if (!get_one(d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &ws, false)) return CUDNN_STATUS_BAD_PARAM;
  d.uids.resize((size_t)u->count);
  d.ptrs.resize((size_t)p->count);
  std::memcpy(d.uids.data(), u->bytes.data(), u->bytes.size());
  std::memcpy(d.ptrs.data(), p->bytes.data(), p->bytes.size());
  d.ws = ws;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_deviceprop(BDesc& d) {
  cudnnHandle_t h = nullptr;
  if (!get_one(d, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, &h) || !h) return CUDNN_STATUS_BAD_PARAM;
  d.handle = h;
  return CUDNN_STATUS_SUCCESS;
}

// Runs a finalized plan's graph: y = alpha·conv(x, w) (+ beta·y), then, fused, for each add of the
// chain y = alpha1·that + alpha2·b_j with b_j broadcast; all in fp32, rounded once to y's type (and
// to a virtual tensor's type in between, as the graph declares it).
void run_graph(const BGraph& g, int64_t engine, const void* x, const void* w, const std::vector<const void*>& b,
               void* y, void* ws,
               int64_t ws_bytes) {
  const BOp& c = g.conv;
  const cudnnTensorStruct xd = legacy_tensor(c.x), cy = legacy_tensor(c.y);
  const cudnnFilterStruct wd = legacy_filter(c.w);
  const bool tf32 = engine == 0 && c.x.type == CUDNN_DATA_FLOAT;
  std::vector<float> acc = convolve(xd, x, wd, w, legacy_conv(c.cv), cy, tf32);
  if (ws_bytes > 0) std::memset(ws, 0xa5, (size_t)ws_bytes);  // an engine's scratch
  const cudnnTensorStruct yd = legacy_tensor(g.out());
  std::vector<cudnnTensorStruct> bd;
  for (const BOp& a : g.adds) bd.push_back(legacy_tensor(a.w));
  size_t i = 0;
  for (int n = 0; n < yd.n; ++n)
    for (int k = 0; k < yd.c; ++k)
      for (int p = 0; p < yd.h; ++p)
        for (int q = 0; q < yd.w; ++q, ++i) {
          const long long yi = tensor_index(yd, n, k, p, q);
          float v = c.alpha * acc[i];
          if (g.adds.empty() && c.beta != 0.f) v += c.beta * load(y, yd.type, yi);
          for (size_t j = 0; j < g.adds.size(); ++j) {
            const BOp& a = g.adds[j];
            if (a.x.type == CUDNN_DATA_HALF) v = __half2float(__float2half_rn(v));
            if (a.x.type == CUDNN_DATA_BFLOAT16) v = __bfloat162float(__float2bfloat16_rn(v));
            // Broadcast: a unit extent of B reads index 0 there.
            const cudnnTensorStruct& d = bd[j];
            const long long bi = tensor_index(d, d.n == 1 ? 0 : n, d.c == 1 ? 0 : k, d.h == 1 ? 0 : p,
                                              d.w == 1 ? 0 : q);
            v = a.alpha * v + a.beta * load(b[j], d.type, bi);
          }
          store(y, yd.type, yi, v);
        }
}

}  // namespace

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t t, cudnnBackendDescriptor_t* d) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  switch (t) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR:
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR:
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR:
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR:
    case CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR: break;
    default: return CUDNN_STATUS_NOT_SUPPORTED;
  }
  BDesc* b = new BDesc;
  b->type = t;
  *d = b;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t d) {
  BDesc* b = as_desc(d);
  if (!b) return CUDNN_STATUS_BAD_PARAM;
  b->magic = 0;  // a second destroy or a later use is caught, not undefined
  delete b;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t count, const void* elements) {
  BDesc* b = as_desc(d);
  if (!b || b->finalized || count < 0 || (count > 0 && !elements)) return CUDNN_STATUS_BAD_PARAM;
  const size_t es = element_size(type);
  if (!es) return CUDNN_STATUS_NOT_SUPPORTED;
  Attr a{type, count, std::vector<unsigned char>(es * (size_t)count)};
  if (count) std::memcpy(a.bytes.data(), elements, a.bytes.size());
  b->attrs[(int)name] = std::move(a);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t d) {
  BDesc* b = as_desc(d);
  if (!b || b->finalized) return CUDNN_STATUS_BAD_PARAM;
  // Choosing and building engines is set-up work (heuristics, runtime-compiled kernels): refused
  // while a stream captures. Descriptors and variant packs are plain host structures.
  switch (b->type) {
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR:
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
    case CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR:
      if (simt::setup_refused_in_capture("cudnnBackendFinalize(engine/plan)")) return CUDNN_STATUS_EXECUTION_FAILED;
      break;
    default: break;
  }
  cudnnStatus_t st = CUDNN_STATUS_NOT_SUPPORTED;
  switch (b->type) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: st = finalize_tensor(*b); break;
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR: st = finalize_conv(*b); break;
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR: st = finalize_pointwise(*b); break;
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR: st = finalize_conv_op(*b); break;
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR: st = finalize_pointwise_op(*b); break;
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: st = finalize_graph(*b); break;
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: st = finalize_heur(*b); break;
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR: st = finalize_engine(*b); break;
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: st = finalize_engine_cfg(*b); break;
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: st = finalize_plan(*b); break;
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: st = finalize_variant_pack(*b); break;
    case CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR: st = finalize_deviceprop(*b); break;
    default: break;
  }
  b->finalized = st == CUDNN_STATUS_SUCCESS;
  return st;
}

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t requested, int64_t* count,
                                       void* elements) {
  BDesc* b = as_desc(d);
  if (!b || requested < 0 || (requested > 0 && !elements)) return CUDNN_STATUS_BAD_PARAM;
  if (!b->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
  auto put_int = [&](int64_t v) {
    if (type != CUDNN_TYPE_INT64) return CUDNN_STATUS_BAD_PARAM;
    if (count) *count = 1;
    if (requested >= 1) std::memcpy(elements, &v, 8);
    return CUDNN_STATUS_SUCCESS;
  };
  // Fills caller-created descriptors of type `t` (as the documentation has it for results).
  auto fill = [&](cudnnBackendDescriptorType_t t, const std::vector<int64_t>& engines) {
    if (type != CUDNN_TYPE_BACKEND_DESCRIPTOR) return CUDNN_STATUS_BAD_PARAM;
    if (count) *count = (int64_t)engines.size();
    for (int64_t i = 0; i < requested && i < (int64_t)engines.size(); ++i) {
      cudnnBackendDescriptor_t p;
      std::memcpy(&p, static_cast<char*>(elements) + i * sizeof(p), sizeof(p));
      BDesc* o = as_desc(p);
      if (!o || o->type != t) return CUDNN_STATUS_BAD_PARAM;
      o->graph = b->graph, o->engine = engines[(size_t)i], o->workspace = engine_workspace(*b->graph, o->engine);
      o->finalized = true;
    }
    return CUDNN_STATUS_SUCCESS;
  };
  switch (b->type) {
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
      if (name != CUDNN_ATTR_ENGINEHEUR_RESULTS) break;
      // Mode A ranks the tensor-core engine first, as the real heuristics do on recent GPUs.
      return fill(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, offered_engines(*b));
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR:
      if (name == CUDNN_ATTR_ENGINECFG_ENGINE) return fill(CUDNN_BACKEND_ENGINE_DESCRIPTOR, {b->engine});
      if (name == CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE) return put_int(b->workspace);
      break;
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR:
      if (name == CUDNN_ATTR_ENGINE_GLOBAL_INDEX) return put_int(b->engine);
      if (name == CUDNN_ATTR_ENGINE_NUMERICAL_NOTE) {
        if (type != CUDNN_TYPE_NUMERICAL_NOTE) return CUDNN_STATUS_BAD_PARAM;
        std::vector<cudnnBackendNumericalNote_t> notes;
        if (b->engine == 0) notes.push_back(CUDNN_NUMERICAL_NOTE_TENSOR_CORE);
        if (b->engine == 0 && simt::refused("cudnn-nondeterministic"))
          notes.push_back(CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC);
        if (count) *count = (int64_t)notes.size();
        const size_t n = std::min(notes.size(), (size_t)requested);
        if (n) std::memcpy(elements, notes.data(), n * sizeof(notes[0]));
        return CUDNN_STATUS_SUCCESS;
      }
      break;
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
      if (name == CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE) return put_int(b->workspace);
      break;
    default: break;
  }
  return CUDNN_STATUS_NOT_SUPPORTED;
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t h, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t pack) {
  const BDesc* p = as_desc(plan);
  const BDesc* v = as_desc(pack);
  if (!h || !p || !v || p->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR ||
      v->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)
    return CUDNN_STATUS_BAD_PARAM;
  if (!p->finalized || !v->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
  // Every non-virtual tensor of the graph needs a device pointer in the pack.
  const std::shared_ptr<const BGraph> g = p->graph;
  auto ptr = [&](const BTensor& t) -> void* {
    for (size_t i = 0; i < v->uids.size(); ++i)
      if (v->uids[i] == t.uid) return v->ptrs[i];
    return nullptr;
  };
  void* x = ptr(g->conv.x);
  void* w = ptr(g->conv.w);
  std::vector<const void*> b;
  for (const BOp& a : g->adds) b.push_back(ptr(a.w));
  void* y = ptr(g->out());
  if (!x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
  for (const void* q : b)
    if (!q) return CUDNN_STATUS_BAD_PARAM;
  for (const void* q : {(const void*)x, (const void*)w, (const void*)y})
    if (!simt::is_device_pointer(q)) return CUDNN_STATUS_EXECUTION_FAILED;
  for (const void* q : b)
    if (!simt::is_device_pointer(q)) return CUDNN_STATUS_EXECUTION_FAILED;
  // The plan may rely on the alignment its tensors declared.
  auto aligned = [](const void* q, const BTensor& t) { return reinterpret_cast<uintptr_t>(q) % (uintptr_t)t.align == 0; };
  if (!aligned(x, g->conv.x) || !aligned(w, g->conv.w) || !aligned(y, g->out()))
    return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
  for (size_t j = 0; j < b.size(); ++j)
    if (!aligned(b[j], g->adds[j].w)) return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
  const int64_t ws_bytes = p->workspace;
  void* ws = v->ws;
  if (ws_bytes > 0 && (!simt::is_device_pointer(ws) || !simt::is_device_pointer(static_cast<char*>(ws) + ws_bytes - 1)))
    return CUDNN_STATUS_BAD_PARAM;
  const int64_t engine = p->engine;
  // What a launch of the plan does now or, captured, at each replay: report to the census, then
  // (unless dry) run.
  auto run = [g, engine, x, w, b, y, ws, ws_bytes]() {
    const cudnnTensorStruct xd = legacy_tensor(g->conv.x), yd = legacy_tensor(g->conv.y);
    const cudnnFilterStruct wd = legacy_filter(g->conv.w);
    // Named for the census, where "onvolution" puts the FLOPs in the conv class.
    static const char* const kNames[] = {"cudnnBackendExecute(convolution)", "cudnnBackendExecute(convolution+add)",
                                         "cudnnBackendExecute(convolution+add+add)"};
    double extra = 0;
    for (const BOp& a : g->adds) {
      double e = 1;
      for (int64_t d : a.w.dims) e *= (double)d;
      extra += e;
    }
    if (census_conv(kNames[g->adds.size()], xd, wd, yd, g->adds.empty() && g->conv.beta != 0.f, extra))
      return;
    g_last_engine = engine;
    run_graph(*g, engine, x, w, b, y, ws, ws_bytes);
  };
  if (simt::capturing()) {
    // The node holds the graph (shared, immutable) and the pointers: the caller may destroy the
    // plan and the pack once this returns, as with the real library.
    simt::capture(run);
    return CUDNN_STATUS_SUCCESS;
  }
  run();
  return CUDNN_STATUS_SUCCESS;
}

int64_t simt::cudnn_last_engine() { return g_last_engine; }
