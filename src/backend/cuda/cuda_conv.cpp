// CUDA convolution through cuDNN's graph (backend descriptor) API: NHWC activations and OHWI
// filters are described by strides, so no layout change is needed. With a bias the graph is
// conv → pointwise add of the [1,K,1,1] bias, and with an `add` (ops::conv2d: a resnet's shortcut,
// [N,K,Ho,Wo], or its time embedding, [N,K,1,1] broadcast) a second pointwise add follows, all
// fused by cuDNN and rounded once; where no engine finalizes the whole graph, a shorter one runs
// (conv + bias, then conv alone) and the bias and add kernels do the rest. The legacy
// cudnnConvolution*Forward calls are deprecated in cuDNN 9, and their fused bias path is tied to
// one algorithm (IMPLICIT_PRECOMP_GEMM); the graph API lets the heuristics pick any fused engine.
// fp32 never runs on a TF32 engine (an engine with a tensor-core note is skipped); fp16 uses
// tensor cores with fp32 accumulation (compute type float).
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "common/check.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

#if SDGEN_HAVE_CUDNN
namespace {

// One backend descriptor, destroyed with its owner.
class BackendDesc {
 public:
  explicit BackendDesc(cudnnBackendDescriptorType_t type) {
    SDGEN_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_));
  }
  ~BackendDesc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const void* values,
           int64_t count = 1) {
    SDGEN_CUDNN_CHECK(cudnnBackendSetAttribute(d_, name, type, count, values));
  }
  void set(cudnnBackendAttributeName_t name, const BackendDesc& d) {
    cudnnBackendDescriptor_t p = d.get();
    set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &p);
  }
  cudnnStatus_t finalize() { return cudnnBackendFinalize(d_); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};
using Desc = std::unique_ptr<BackendDesc>;

Desc make(cudnnBackendDescriptorType_t type) { return std::make_unique<BackendDesc>(type); }

// The variant pack names tensors by these UIDs.
enum : int64_t { kUidX = 1, kUidW = 2, kUidBias = 3, kUidY = 4, kUidConvOut = 5, kUidAdd = 6, kUidBiasOut = 7 };

// What the convolution adds after its bias: nothing, a tensor of its output's shape, or one value
// per (image, channel).
enum class Extra { kNone, kResidual, kPerImage };

// A 4-d tensor in cuDNN's logical [N, C, H, W] order, stored channels-last (NHWC for activations,
// KRSC for filters, which is how our OHWI weights lie).
Desc nhwc_tensor(int64_t uid, cudnnDataType_t type, std::array<int64_t, 4> d, int64_t alignment, bool is_virtual) {
  Desc t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t strides[4] = {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
  t->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid);
  t->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type);
  t->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, d.data(), 4);
  t->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides, 4);
  t->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &alignment);
  t->set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &is_virtual);
  SDGEN_CUDNN_CHECK(t->finalize());
  return t;
}

struct ConvShape {
  DType dt;
  int N, H, W, C, K, R, S, stride, padding;
  int64_t alignment;  // of every data pointer, in bytes (a power of two, at most 16)
  int Ho() const { return (H + 2 * padding - R) / stride + 1; }
  int Wo() const { return (W + 2 * padding - S) / stride + 1; }
};

// Everything about one convolution shape that does not depend on the data: the finalized
// execution plan (and the descriptors it was built from, kept alive with it), whether it adds the
// bias itself, its workspace. Made once per shape (the UNet has a few dozen), so a step builds no
// graph and asks no heuristic; only a variant pack is made per call.
struct ConvPlan {
  std::vector<Desc> parts;
  Desc plan;
  bool fused = false;        // adds the bias itself
  bool extra_fused = false;  // adds the Extra itself
  int64_t workspace = 0;
};

// Whether an engine's numerical notes are acceptable for `dt`: fp32 must not be rounded to TF32
// (tensor cores) or otherwise down-converted; fp16 must accumulate in fp32. Neither may be
// non-deterministic (atomics, split reductions in varying order): the pipeline's images must be
// bit-identical with CUDA graphs on and off and from run to run.
bool notes_ok(cudnnBackendDescriptor_t engine, DType dt) {
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t n = 0;
  if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, notes) != CUDNN_STATUS_SUCCESS)
    return dt != DType::F32;  // unknown notes: fp32 cannot rule out TF32
  for (int64_t i = 0; i < n && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; ++i) {
    if (notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION ||
        notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC)
      return false;
    if (dt == DType::F32 &&
        (notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE || notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS))
      return false;
  }
  return true;
}

// Plans with the first of the heuristic's engine `configs` whose notes suit `dt`, that finalizes
// and whose workspace is within kConvWorkspaceCap (a larger one would outgrow the memory
// estimate's allowance, cuda_backend.h; a later config is slower at worst); keeps the config and
// its engine in `plan`. False when no config qualifies.
bool adopt_config(ConvPlan& plan, std::vector<Desc>& configs, BackendDesc* device, DType dt) {
  for (Desc& config : configs) {
    Desc engine = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    cudnnBackendDescriptor_t e = engine->get();
    int64_t got = 0;
    if (cudnnBackendGetAttribute(config->get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got,
                                 &e) != CUDNN_STATUS_SUCCESS ||
        got != 1 || !notes_ok(e, dt))
      continue;
    Desc exec = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    exec->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *config);
    if (device) exec->set(CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, *device);
    if (exec->finalize() != CUDNN_STATUS_SUCCESS) continue;  // this config cannot run here: next
    int64_t workspace = 0;
    SDGEN_CUDNN_CHECK(cudnnBackendGetAttribute(exec->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                               CUDNN_TYPE_INT64, 1, &got, &workspace));
    if (workspace > kConvWorkspaceCap) continue;
    plan.workspace = workspace;
    plan.parts.push_back(std::move(config));
    plan.parts.push_back(std::move(engine));
    plan.plan = std::move(exec);
    return true;
  }
  return false;
}

// The graph conv(x, w) [→ + bias] for `s`, planned with the first heuristic (mode A) engine config
// that adopt_config accepts; null when none does.
std::unique_ptr<ConvPlan> build_plan(cudnnHandle_t h, const ConvShape& s, bool fuse_bias, Extra extra) {
  auto plan = std::make_unique<ConvPlan>();
  auto keep = [&](Desc d) -> BackendDesc& {
    plan->parts.push_back(std::move(d));
    return *plan->parts.back();
  };
  const cudnnDataType_t t =
      s.dt == DType::F32 ? CUDNN_DATA_FLOAT : s.dt == DType::BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
  const cudnnDataType_t fp32 = CUDNN_DATA_FLOAT;
  BackendDesc& x = keep(nhwc_tensor(kUidX, t, {s.N, s.C, s.H, s.W}, s.alignment, false));
  BackendDesc& w = keep(nhwc_tensor(kUidW, t, {s.K, s.C, s.R, s.S}, s.alignment, false));
  BackendDesc& y = keep(nhwc_tensor(kUidY, t, {s.N, s.K, s.Ho(), s.Wo()}, s.alignment, false));

  BackendDesc& conv = keep(make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  const int64_t dims = 2, one[2] = {1, 1}, stride[2] = {s.stride, s.stride}, pad[2] = {s.padding, s.padding};
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &fp32);
  conv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode);
  conv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &dims);
  conv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, one, 2);
  conv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, stride, 2);
  conv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pad, 2);
  conv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, pad, 2);
  SDGEN_CUDNN_CHECK(conv.finalize());

  // Fused, the convolution's output is a virtual fp32 tensor that only the add reads (and so is the
  // bias add's when the extra add follows).
  const bool fused = fuse_bias || extra != Extra::kNone;
  BackendDesc& conv_out =
      fused ? keep(nhwc_tensor(kUidConvOut, fp32, {s.N, s.K, s.Ho(), s.Wo()}, s.alignment, true)) : y;
  BackendDesc& conv_op = keep(make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
  const float alpha = 1.f, beta = 0.f;
  conv_op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x);
  conv_op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w);
  conv_op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, conv_out);
  conv_op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv);
  conv_op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &alpha);
  conv_op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &beta);
  SDGEN_CUDNN_CHECK(conv_op.finalize());
  std::vector<cudnnBackendDescriptor_t> ops{conv_op.get()};

  BackendDesc* add = nullptr;
  auto pointwise_add = [&](BackendDesc& in, BackendDesc& b, BackendDesc& out) {
    if (!add) {
      add = &keep(make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
      const cudnnPointwiseMode_t pw = CUDNN_POINTWISE_ADD;
      add->set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &pw);
      add->set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &fp32);
      SDGEN_CUDNN_CHECK(add->finalize());
    }
    BackendDesc& add_op = keep(make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
    add_op.set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, *add);
    add_op.set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, in);
    add_op.set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
    add_op.set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, out);
    SDGEN_CUDNN_CHECK(add_op.finalize());
    ops.push_back(add_op.get());
  };
  BackendDesc* cur = &conv_out;
  if (fuse_bias) {
    BackendDesc& bias = keep(nhwc_tensor(kUidBias, t, {1, s.K, 1, 1}, s.alignment, false));
    BackendDesc& out = extra != Extra::kNone
                           ? keep(nhwc_tensor(kUidBiasOut, fp32, {s.N, s.K, s.Ho(), s.Wo()}, s.alignment, true))
                           : y;
    pointwise_add(*cur, bias, out);
    cur = &out;
  }
  if (extra != Extra::kNone) {
    const std::array<int64_t, 4> dims = extra == Extra::kResidual ? std::array<int64_t, 4>{s.N, s.K, s.Ho(), s.Wo()}
                                                                  : std::array<int64_t, 4>{s.N, s.K, 1, 1};
    BackendDesc& other = keep(nhwc_tensor(kUidAdd, t, dims, s.alignment, false));
    pointwise_add(*cur, other, y);
  }

  BackendDesc& graph = keep(make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops.data(), (int64_t)ops.size());
  if (graph.finalize() != CUDNN_STATUS_SUCCESS) return nullptr;

  // The device comes from the handle through a device-properties descriptor (the graph's and the
  // plan's own handle attributes are deprecated in cuDNN 9). Optional: without it cuDNN plans for
  // the current device.
  BackendDesc* device = &keep(make(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR));
  device->set(CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, &h);
  if (device->finalize() != CUDNN_STATUS_SUCCESS) device = nullptr;

  BackendDesc& heur = keep(make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR));
  const cudnnBackendHeurMode_t heur_mode = CUDNN_HEUR_MODE_A;
  heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &heur_mode);
  if (device) heur.set(CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, *device);
  if (heur.finalize() != CUDNN_STATUS_SUCCESS) return nullptr;
  int64_t count = 0;
  if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                               nullptr) != CUDNN_STATUS_SUCCESS ||
      count <= 0)
    return nullptr;
  std::vector<Desc> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(configs.back()->get());
  }
  if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                               &count, raw.data()) != CUDNN_STATUS_SUCCESS)
    return nullptr;
  configs.resize((size_t)std::max<int64_t>(0, std::min<int64_t>(count, (int64_t)configs.size())));
  if (!adopt_config(*plan, configs, device, s.dt)) return nullptr;
  plan->fused = fuse_bias;
  plan->extra_fused = extra != Extra::kNone;
  return plan;
}

using ConvKey = std::tuple<const void*, int, int, int, int, int, int, int, int, int, int, int64_t, bool, int>;

// Never destroyed, as cuda_linear.cpp's plans: the backend releases its own at its destruction.
std::map<ConvKey, std::unique_ptr<ConvPlan>>& conv_plans() {
  static auto* m = new std::map<ConvKey, std::unique_ptr<ConvPlan>>;
  return *m;
}

ConvPlan& conv_plan(cudnnHandle_t h, const ConvShape& s, bool bias, Extra extra) {
  std::unique_ptr<ConvPlan>& slot = conv_plans()[ConvKey{h, (int)s.dt, s.N, s.H, s.W, s.C, s.K, s.R, s.S,
                                                         s.stride, s.padding, s.alignment, bias, (int)extra}];
  if (slot) return *slot;
  if (extra != Extra::kNone) slot = build_plan(h, s, bias, extra);
  if (!slot && bias) slot = build_plan(h, s, true, Extra::kNone);
  if (!slot) slot = build_plan(h, s, false, Extra::kNone);  // no fused engine: the kernels add
  if (!slot) throw_runtime("cuDNN offers no engine for this convolution");
  return *slot;
}


}  // namespace
#endif

size_t release_conv_plans(const void* handle) {
#if SDGEN_HAVE_CUDNN
  return erase_plans_of(conv_plans(), handle);
#else
  (void)handle;
  return 0;
#endif
}

Tensor CudaBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride,
                           int padding, const Tensor& add) {
#if !SDGEN_HAVE_CUDNN
  (void)x, (void)w, (void)bias, (void)stride, (void)padding, (void)add;
  throw_runtime("conv2d is not implemented on CUDA yet (this build has no cuDNN)");
#else
  DType dt = x.dtype();
  int N = (int)x.dim(0), H = (int)x.dim(1), W = (int)x.dim(2), C = (int)x.dim(3);
  int K = (int)w.dim(0), R = (int)w.dim(1), S = (int)w.dim(2);
  int Ho = (H + 2 * padding - R) / stride + 1, Wo = (W + 2 * padding - S) / stride + 1;
  Tensor y = Tensor::empty({N, Ho, Wo, K}, dt, Device::CUDA);
  if (y.numel() == 0) return y;
  Tensor wt = as(w, dt);
  const Tensor b = as(bias, dt), e = as(add, dt);
  const void* bp = b.defined() ? b.data() : nullptr;
  const void* ep = e.defined() ? e.data() : nullptr;
  const Extra extra = !e.defined() ? Extra::kNone : e.ndim() == 2 ? Extra::kPerImage : Extra::kResidual;
  const ConvShape shape{dt, N, H, W, C, K, R, S, stride, padding,
                        common_alignment({x.data(), wt.data(), y.data(), bp, ep})};
  ConvPlan& plan = conv_plan(cudnn_, shape, b.defined(), extra);
  // The workspace is a pool buffer: reused by later work on the same stream only.
  Tensor ws = plan.workspace ? Tensor::empty({(plan.workspace + 3) / 4}, DType::F32, Device::CUDA) : Tensor();
  void* wsp = ws.defined() ? ws.data() : nullptr;
  int64_t uids[5] = {kUidX, kUidW, kUidY, 0, 0};
  void* ptrs[5] = {const_cast<void*>(x.data()), wt.data(), y.data(), nullptr, nullptr};
  int64_t n = 3;
  if (plan.fused) uids[n] = kUidBias, ptrs[n++] = const_cast<void*>(bp);
  if (plan.extra_fused) uids[n] = kUidAdd, ptrs[n++] = const_cast<void*>(ep);
  BackendDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids, n);
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs, n);
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &wsp);
  SDGEN_CUDNN_CHECK(pack.finalize());
  SDGEN_CUDNN_CHECK(cudnnBackendExecute(cudnn_, plan.plan->get(), pack.get()));
  if (b.defined() && !plan.fused)
    kernels::add_channel(y.data(), b.data(), y.data(), 1, (int64_t)N * Ho * Wo, K, dt, stream_);
  if (extra == Extra::kResidual && !plan.extra_fused) kernels::add(y.data(), ep, y.data(), y.numel(), dt, stream_);
  if (extra == Extra::kPerImage && !plan.extra_fused)
    kernels::add_channel(y.data(), ep, y.data(), N, (int64_t)Ho * Wo, K, dt, stream_);
  return y;
#endif
}

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
