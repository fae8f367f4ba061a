// The emulator's cuDNN twin against a direct convolution loop written from the cuDNN docs: NCHW
// and NHWC tensors, KCRS and KRSC filters, padding, stride, dilation, alpha/beta, and the fused
// y = act(alpha1·conv(x) + alpha2·z + bias) with a residual z and ReLU, in fp32 and fp16; and the
// graph (backend descriptor) API as the backend uses it: NHWC conv → pointwise add of the bias,
// through heuristics, engine configs, an execution plan and a variant pack, with its attribute
// checks and CUDA-graph capture.
#if SDGEN_HAVE_CUDNN
#include <cuda_fp16.h>
#include <cudnn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
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
  cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(yd), cudnnDestroyTensorDescriptor(bd);
  cudnnDestroyFilterDescriptor(wd), cudnnDestroyConvolutionDescriptor(cd);
  cudnnDestroyActivationDescriptor(ad);
  cudnnDestroy(h);
}

// ---- The graph API ----

struct Bd {  // a backend descriptor owned by the test
  cudnnBackendDescriptor_t d = nullptr;
  explicit Bd(cudnnBackendDescriptorType_t t) { EXPECT_EQ(cudnnBackendCreateDescriptor(t, &d), CUDNN_STATUS_SUCCESS); }
  ~Bd() { cudnnBackendDestroyDescriptor(d); }
  Bd(const Bd&) = delete;
  Bd& operator=(const Bd&) = delete;
  cudnnStatus_t set(cudnnBackendAttributeName_t n, cudnnBackendAttributeType_t t, const void* v, int64_t c = 1) {
    return cudnnBackendSetAttribute(d, n, t, c, v);
  }
  cudnnStatus_t set(cudnnBackendAttributeName_t n, const Bd& o) {
    return cudnnBackendSetAttribute(d, n, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &o.d);
  }
  cudnnStatus_t fin() { return cudnnBackendFinalize(d); }
};

// An NHWC tensor with logical dims [n, c, h, w]; not finalized when `finalize` is false.
std::unique_ptr<Bd> gtensor(int64_t uid, cudnnDataType_t t, int64_t n, int64_t c, int64_t h, int64_t w,
                            bool is_virtual = false, bool finalize = true) {
  auto d = std::make_unique<Bd>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t dims[4] = {n, c, h, w}, strides[4] = {h * w * c, 1, w * c, c}, align = 16;
  d->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid);
  d->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &t);
  d->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims, 4);
  d->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides, 4);
  d->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align);
  d->set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &is_virtual);
  if (finalize) {
    EXPECT_EQ(d->fin(), CUDNN_STATUS_SUCCESS);
  }
  return d;
}

// The operation graph conv(x, w) [→ + bias] for `g` (square padding, stride, dilation), NHWC.
struct GraphUnderTest {
  std::vector<std::unique_ptr<Bd>> parts;
  Bd* graph = nullptr;
  GraphUnderTest(const Geo& g, bool half, bool fused) {
    const cudnnDataType_t t = half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT, f32 = CUDNN_DATA_FLOAT;
    auto keep = [&](std::unique_ptr<Bd> d) -> Bd& { parts.push_back(std::move(d)); return *parts.back(); };
    Bd& x = keep(gtensor(1, t, g.n, g.c, g.h, g.w));
    Bd& w = keep(gtensor(2, t, g.k, g.c, g.r, g.s));
    Bd& y = keep(gtensor(4, t, g.n, g.k, g.ho(), g.wo()));
    Bd& cv = keep(std::make_unique<Bd>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
    const int64_t nd = 2, dil[2] = {g.dil, g.dil}, st[2] = {g.stride, g.stride}, pad[2] = {g.pad, g.pad};
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32);
    cv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode);
    cv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &nd);
    cv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dil, 2);
    cv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, st, 2);
    cv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pad, 2);
    cv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, pad, 2);
    EXPECT_EQ(cv.fin(), CUDNN_STATUS_SUCCESS);
    Bd& out = fused ? keep(gtensor(5, f32, g.n, g.k, g.ho(), g.wo(), true)) : y;
    Bd& op = keep(std::make_unique<Bd>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
    const float one = 1.f, zero = 0.f;
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, out);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, cv);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &one);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &zero);
    EXPECT_EQ(op.fin(), CUDNN_STATUS_SUCCESS);
    std::vector<cudnnBackendDescriptor_t> ops{op.d};
    if (fused) {
      Bd& b = keep(gtensor(3, t, 1, g.k, 1, 1));
      Bd& pw = keep(std::make_unique<Bd>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
      const cudnnPointwiseMode_t add = CUDNN_POINTWISE_ADD;
      pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &add);
      pw.set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &f32);
      EXPECT_EQ(pw.fin(), CUDNN_STATUS_SUCCESS);
      Bd& pop = keep(std::make_unique<Bd>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
      pop.set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
      pop.set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, out);
      pop.set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
      pop.set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
      EXPECT_EQ(pop.fin(), CUDNN_STATUS_SUCCESS);
      ops.push_back(pop.d);
    }
    graph = &keep(std::make_unique<Bd>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
    graph->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops.data(), (int64_t)ops.size());
    EXPECT_EQ(graph->fin(), CUDNN_STATUS_SUCCESS);
  }
};

// A finalized execution plan for the heuristics' engine config whose engine has (or lacks) the
// tensor-core note; its workspace size.
std::unique_ptr<Bd> plan_for(const Bd& graph, bool tensor_core, int64_t* workspace) {
  Bd heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode);
  EXPECT_EQ(heur.fin(), CUDNN_STATUS_SUCCESS);
  int64_t n = 0;
  EXPECT_EQ(cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n,
                                     nullptr),
            CUDNN_STATUS_SUCCESS);
  EXPECT_GE(n, 1);
  std::vector<std::unique_ptr<Bd>> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < n; ++i) {
    cfgs.push_back(std::make_unique<Bd>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(cfgs.back()->d);
  }
  EXPECT_EQ(cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &n,
                                     raw.data()),
            CUDNN_STATUS_SUCCESS);
  for (int64_t i = 0; i < n; ++i) {
    Bd engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t got = 0;
    EXPECT_EQ(cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got,
                                       &engine.d),
              CUDNN_STATUS_SUCCESS);
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    EXPECT_EQ(cudnnBackendGetAttribute(engine.d, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                       CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &got, notes),
              CUDNN_STATUS_SUCCESS);
    bool tc = false;
    for (int64_t j = 0; j < got; ++j) tc |= notes[j] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE;
    if (tc != tensor_core) continue;
    auto plan = std::make_unique<Bd>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    plan->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *cfgs[i]);
    EXPECT_EQ(plan->fin(), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnBackendGetAttribute(plan->d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got,
                                       workspace),
              CUDNN_STATUS_SUCCESS);
    return plan;
  }
  ADD_FAILURE() << "no engine config with tensor_core " << tensor_core;
  return nullptr;
}

cudnnStatus_t execute(cudnnHandle_t h, const Bd& plan, void* x, void* w, void* b, void* y, void* ws) {
  int64_t uids[4] = {1, 2, 4, 3};
  void* ptrs[4] = {x, w, y, b};
  Bd pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const int64_t n = b ? 4 : 3;
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids, n);
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs, n);
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &ws);
  EXPECT_EQ(pack.fin(), CUDNN_STATUS_SUCCESS);
  return cudnnBackendExecute(h, plan.d, pack.d);
}

// conv(x, w) + bias from the direct loop, NHWC, in double.
std::vector<float> reference_nhwc(const Geo& g, const std::vector<float>& x, const std::vector<float>& w,
                                  const std::vector<float>* bias) {
  std::vector<float> want((size_t)g.n * g.ho() * g.wo() * g.k);
  for (int n = 0; n < g.n; ++n)
    for (int k = 0; k < g.k; ++k)
      for (int p = 0; p < g.ho(); ++p)
        for (int q = 0; q < g.wo(); ++q) {
          double acc = bias ? (*bias)[k] : 0.0;
          for (int c = 0; c < g.c; ++c)
            for (int r = 0; r < g.r; ++r)
              for (int s = 0; s < g.s; ++s) {
                int hi = p * g.stride - g.pad + r * g.dil, wi = q * g.stride - g.pad + s * g.dil;
                if (hi < 0 || hi >= g.h || wi < 0 || wi >= g.w) continue;
                acc += (double)x[tidx(true, g.c, g.h, g.w, n, c, hi, wi)] * w[(((size_t)k * g.r + r) * g.s + s) * g.c + c];
              }
          want[tidx(true, g.k, g.ho(), g.wo(), n, k, p, q)] = (float)acc;
        }
  return want;
}

struct GraphRun {
  std::vector<float> got, want;
};
GraphRun run_graph(const Geo& g, bool half, bool fused, bool tensor_core, bool capture) {
  auto x = rnd((size_t)g.n * g.c * g.h * g.w, 11, half), w = rnd((size_t)g.k * g.c * g.r * g.s, 12, half);
  auto bias = rnd((size_t)g.k, 13, half);
  GraphRun r;
  r.want = reference_nhwc(g, x, w, fused ? &bias : nullptr);
  GraphUnderTest gt(g, half, fused);
  int64_t ws_bytes = 0;
  auto plan = plan_for(*gt.graph, tensor_core, &ws_bytes);
  if (!plan) return r;
  cudnnHandle_t h;
  cudnnCreate(&h);
  void *dx = upload(x, half), *dw = upload(w, half), *db = upload(bias, half),
       *dy = upload(std::vector<float>(r.want.size(), 7.f), half), *ws = nullptr;
  if (ws_bytes) SDGEN_CUDA_CHECK(cudaMalloc(&ws, (size_t)ws_bytes));
  if (capture) {
    cudaStream_t s;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    SDGEN_CUDA_CHECK(cudaStreamCreate(&s));
    cudnnSetStream(h, s);
    SDGEN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    EXPECT_EQ(execute(h, *plan, dx, dw, fused ? db : nullptr, dy, ws), CUDNN_STATUS_SUCCESS);
    SDGEN_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    plan.reset();  // the captured node must not depend on the plan or the pack
    EXPECT_EQ(download(dy, r.want.size(), half)[0], 7.f) << "ran while captured";
    SDGEN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    SDGEN_CUDA_CHECK(cudaGraphLaunch(exec, s));
    SDGEN_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
  } else {
    EXPECT_EQ(execute(h, *plan, dx, dw, fused ? db : nullptr, dy, ws), CUDNN_STATUS_SUCCESS);
  }
  r.got = download(dy, r.want.size(), half);
  for (void* p : {dx, dw, db, dy, ws}) cudaFree(p);
  cudnnDestroy(h);
  return r;
}

const Geo kGraphGeos[] = {Geo{2, 3, 7, 6, 5, 3, 3, 1, 1, 1}, Geo{1, 4, 9, 8, 3, 3, 3, 1, 2, 1},
                          Geo{2, 5, 5, 5, 4, 1, 1, 0, 2, 1}, Geo{1, 6, 9, 8, 3, 3, 2, 2, 2, 2}};

TEST(CudnnTwin, GraphConvBiasMatchesDirectLoop) {
  for (bool half : {false, true})
    for (bool fused : {false, true})
      for (const Geo& g : kGraphGeos) {
        SCOPED_TRACE(testing::Message() << "half " << half << " fused " << fused << " c " << g.c << " r " << g.r
                                        << " stride " << g.stride << " pad " << g.pad);
        // fp32 on the FMA engine is exact to rounding; fp16 on tensor cores accumulates in fp32.
        GraphRun r = run_graph(g, half, fused, /*tensor_core=*/half, /*capture=*/false);
        ASSERT_EQ(r.got.size(), r.want.size());
        for (size_t i = 0; i < r.want.size(); ++i)
          ASSERT_NEAR(r.got[i], r.want[i], half ? 4e-3 * (1 + std::fabs(r.want[i])) : 1e-5) << "element " << i;
      }
}

// What the backend must avoid for fp32: the tensor-core engine rounds fp32 operands to TF32, which
// is visibly less accurate than the FMA engine.
TEST(CudnnTwin, GraphTensorCoreEngineRoundsFp32ToTf32) {
  const Geo g{1, 64, 6, 6, 4, 3, 3, 1, 1, 1};
  GraphRun tc = run_graph(g, false, true, /*tensor_core=*/true, false);
  GraphRun fma = run_graph(g, false, true, /*tensor_core=*/false, false);
  double worst_tc = 0, worst_fma = 0;
  for (size_t i = 0; i < tc.want.size(); ++i) {
    worst_tc = std::max(worst_tc, (double)std::fabs(tc.got[i] - tc.want[i]));
    worst_fma = std::max(worst_fma, (double)std::fabs(fma.got[i] - fma.want[i]));
  }
  EXPECT_LT(worst_fma, 2e-5);
  EXPECT_GT(worst_tc, 1e-4);
  EXPECT_LT(worst_tc, 5e-2);
}

TEST(CudnnTwin, GraphExecutesWhenTheCapturedGraphIsLaunched) {
  for (bool half : {false, true}) {
    const Geo g{1, 4, 9, 8, 3, 3, 3, 1, 2, 1};
    GraphRun r = run_graph(g, half, true, half, /*capture=*/true);
    ASSERT_EQ(r.got.size(), r.want.size());
    for (size_t i = 0; i < r.want.size(); ++i)
      ASSERT_NEAR(r.got[i], r.want[i], half ? 4e-3 * (1 + std::fabs(r.want[i])) : 1e-5) << "element " << i;
  }
}

TEST(CudnnTwin, GraphFinalizeChecksRequiredAttributes) {
  // A tensor without its UID, and one whose dimensions come as the wrong type.
  {
    Bd t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    const int64_t dims[4] = {1, 2, 3, 4}, strides[4] = {24, 1, 8, 2}, align = 16;
    t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &f32);
    t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims, 4);
    t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides, 4);
    t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align);
    EXPECT_EQ(t.fin(), CUDNN_STATUS_BAD_PARAM);
    const int64_t uid = 1;
    t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid);
    const int32_t dims32[4] = {1, 2, 3, 4};
    t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT32, dims32, 4);
    EXPECT_EQ(t.fin(), CUDNN_STATUS_BAD_PARAM);
    t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims, 4);
    EXPECT_EQ(t.fin(), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid), CUDNN_STATUS_BAD_PARAM) << "finalized";
  }
  // A convolution operation without its filter, or given a non-finalized tensor.
  {
    auto x = gtensor(1, CUDNN_DATA_FLOAT, 1, 2, 3, 3), y = gtensor(4, CUDNN_DATA_FLOAT, 1, 2, 3, 3);
    auto w = gtensor(2, CUDNN_DATA_FLOAT, 2, 2, 1, 1, false, /*finalize=*/false);
    Bd cv(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    const int64_t nd = 2, one[2] = {1, 1}, zero[2] = {0, 0};
    cv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32);
    cv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode);
    cv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &nd);
    cv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, one, 2);
    cv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, one, 2);
    cv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, zero, 2);
    EXPECT_EQ(cv.fin(), CUDNN_STATUS_BAD_PARAM) << "no post paddings";
    cv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, zero, 2);
    ASSERT_EQ(cv.fin(), CUDNN_STATUS_SUCCESS);
    Bd op(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    const float a = 1.f, b = 0.f;
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, *x);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, *y);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, cv);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &a);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &b);
    EXPECT_EQ(op.fin(), CUDNN_STATUS_BAD_PARAM) << "no W";
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, *w);
    EXPECT_EQ(op.fin(), CUDNN_STATUS_BAD_PARAM) << "W not finalized";
    ASSERT_EQ(w->fin(), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(op.fin(), CUDNN_STATUS_SUCCESS);
  }
  // Heuristics without a mode; a plan queried before it is finalized.
  {
    GraphUnderTest gt(Geo{1, 2, 3, 3, 2, 1, 1, 0, 1, 1}, false, true);
    Bd heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, *gt.graph);
    EXPECT_EQ(heur.fin(), CUDNN_STATUS_BAD_PARAM);
    Bd plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    int64_t n = 0, ws = 0;
    EXPECT_EQ(cudnnBackendGetAttribute(plan.d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws),
              CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED);
    EXPECT_EQ(plan.fin(), CUDNN_STATUS_BAD_PARAM) << "no engine config";
  }
}

TEST(CudnnTwin, GraphExecuteChecksTheVariantPack) {
  const Geo g{1, 2, 4, 4, 3, 3, 3, 1, 1, 1};
  GraphUnderTest gt(g, false, true);
  int64_t ws_bytes = 0;
  auto plan = plan_for(*gt.graph, false, &ws_bytes);
  ASSERT_TRUE(plan);
  ASSERT_GT(ws_bytes, 0);
  cudnnHandle_t h;
  cudnnCreate(&h);
  std::vector<float> x(32, 1.f), w(54, 1.f), b(3, 1.f), y(48, 0.f);
  void *dx = upload(x, false), *dw = upload(w, false), *db = upload(b, false), *dy = upload(y, false), *ws = nullptr;
  SDGEN_CUDA_CHECK(cudaMalloc(&ws, (size_t)ws_bytes));
  EXPECT_EQ(execute(h, *plan, dx, dw, nullptr, dy, ws), CUDNN_STATUS_BAD_PARAM) << "bias UID missing";
  EXPECT_EQ(execute(h, *plan, dx, dw, db, dy, nullptr), CUDNN_STATUS_BAD_PARAM) << "no workspace";
  EXPECT_EQ(execute(h, *plan, x.data(), dw, db, dy, ws), CUDNN_STATUS_EXECUTION_FAILED) << "host pointer";
  EXPECT_EQ(execute(h, *plan, static_cast<char*>(dx) + 4, dw, db, dy, ws), CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER);
  EXPECT_EQ(execute(h, *plan, dx, dw, db, dy, ws), CUDNN_STATUS_SUCCESS);
  for (void* p : {dx, dw, db, dy, ws}) cudaFree(p);
  cudnnDestroy(h);
}

}  // namespace
#endif  // SDGEN_HAVE_CUDNN

namespace {
// The twins refuse library set-up while a stream captures (a real library may: cuDNN's engine
// heuristics and runtime-compiled plans, cuBLAS(Lt) handles and algorithm queries), so a pipeline
// that made its first library call inside a capture fails here as on a GPU. Outside a capture the
// same calls succeed.
TEST(CudnnTwin, SetupCallsAreRefusedWhileCapturing) {
  cudaStream_t s;
  SDGEN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  SDGEN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  cudnnHandle_t h = nullptr;
  EXPECT_NE(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
  cudnnBackendDescriptor_t heur = nullptr;
  ASSERT_EQ(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnBackendFinalize(heur), CUDNN_STATUS_EXECUTION_FAILED);
  cudnnBackendDestroyDescriptor(heur);
  cudaGraph_t graph = nullptr;
  SDGEN_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  SDGEN_CUDA_CHECK(cudaGraphDestroy(graph));
  ASSERT_EQ(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
  cudnnDestroy(h);
  SDGEN_CUDA_CHECK(cudaStreamDestroy(s));
}
}  // namespace
