// Host twins of the cuBLASLt calls the CUDA backend makes (src/backend/cuda/cuda_linear.cpp),
// against the real cublasLt.h declarations. Semantics as documented: column-major layouts
// (rows, cols, ld) per matrix, TRANSA/TRANSB on the matmul descriptor, D = alpha·op(A)·op(B) +
// beta·C (C not read when beta == 0; C and D may differ), then the epilogue: DEFAULT, or BIAS
// (a vector of D's row count, broadcast over columns, in BIAS_DATA_TYPE, default D's type), all in
// fp32 and rounded once to D's type. fp32/fp16 data, CUBLAS_COMPUTE_32F (TF32 variants round the
// inputs first), fp32 scale type. Anything else (other epilogues, batched layouts, other types)
// answers CUBLAS_STATUS_NOT_SUPPORTED, as the real heuristic does for what it cannot run.
// Descriptors live inside the header's opaque structs. Recorded into a graph, a matmul keeps the
// descriptor values and scalars of the call, as the real library does.
// Refusals (SIMT_REFUSE, simt_refuse.h), for the backend's fallback paths:
//   lt-heuristic  cublasLtMatmulAlgoGetHeuristic succeeds but finds no algorithm (found = 0), as
//                 the real one may for a shape, alignment or workspace cap it has no kernel for.
#include <cublasLt.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "blas_twin_math.h"
#include "simt_census.h"
#include "simt_refuse.h"

struct cublasLtContext {
  int unused = 0;
};

namespace simt {
bool is_device_pointer(const void* p);
}

namespace {

using simt::blas::dot;
using simt::blas::load;
using simt::blas::store;
using simt::blas::to_tf32;

struct Desc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int bias_type = -1;  // -1: D's type
};
struct Layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
};
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t), "descriptor fits the opaque struct");
static_assert(sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "layout fits the opaque struct");

// The objects placement-new'd into the opaque storage (std::launder: the storage's declared type is
// uint64_t[]).
Desc& desc(cublasLtMatmulDesc_t d) { return *std::launder(reinterpret_cast<Desc*>(static_cast<void*>(d->data))); }
Layout& layout(cublasLtMatrixLayout_t l) {
  return *std::launder(reinterpret_cast<Layout*>(static_cast<void*>(l->data)));
}


bool float_type(int t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }
bool half_type(int t) { return t == CUDA_R_16F || t == CUDA_R_16BF; }  // tensor-core operands

// Whether the twin (and so the backend's call) is one it implements; the heuristic and the matmul
// both ask.
cublasStatus_t check(const Desc& d, const Layout& a, const Layout& b, const Layout& c, const Layout& dd) {
  if (d.compute != CUBLAS_COMPUTE_32F && d.compute != CUBLAS_COMPUTE_32F_FAST_TF32) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d.scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d.epilogue != CUBLASLT_EPILOGUE_DEFAULT && d.epilogue != CUBLASLT_EPILOGUE_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
  for (const Layout* l : {&a, &b, &c, &dd})
    if (!float_type(l->type) || l->batch != 1) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d.bias_type >= 0 && !float_type(d.bias_type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool tA = d.ta != CUBLAS_OP_N, tB = d.tb != CUBLAS_OP_N;
  const uint64_t m = tA ? a.cols : a.rows, k = tA ? a.rows : a.cols;
  const uint64_t kb = tB ? b.cols : b.rows, n = tB ? b.rows : b.cols;
  if (k != kb || dd.rows != m || dd.cols != n || c.rows != m || c.cols != n) return CUBLAS_STATUS_INVALID_VALUE;
  for (const Layout* l : {&a, &b, &c, &dd})
    if (l->ld < (int64_t)std::max<uint64_t>(1, l->rows)) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

void matmul(const Desc& d, float alpha, const void* A, const Layout& a, const void* B, const Layout& b, float beta,
            const void* C, const Layout& c, void* D, const Layout& dl) {
  const bool tA = d.ta != CUBLAS_OP_N, tB = d.tb != CUBLAS_OP_N;
  const uint64_t m = dl.rows, n = dl.cols, k = tA ? a.rows : a.cols;
  const bool tf32 = d.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  std::vector<float> aw(m * k), bw(n * k);
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t p = 0; p < k; ++p) {
      const float v = load(A, a.type, tA ? (long long)(i * a.ld + p) : (long long)(i + p * a.ld));
      aw[i * k + p] = tf32 ? to_tf32(v) : v;
    }
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t p = 0; p < k; ++p) {
      const float v = load(B, b.type, tB ? (long long)(j + p * b.ld) : (long long)(p + j * b.ld));
      bw[j * k + p] = tf32 ? to_tf32(v) : v;
    }
  const int bias_type = d.bias_type >= 0 ? d.bias_type : dl.type;
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) {
      float out = alpha * dot(&aw[i * k], &bw[j * k], k);
      if (beta != 0.f) out += beta * load(C, c.type, (long long)(i + j * c.ld));
      if (d.epilogue == CUBLASLT_EPILOGUE_BIAS) out += load(d.bias, bias_type, (long long)i);
      store(D, dl.type, (long long)(i + j * dl.ld), out);
    }
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  if (simt::setup_refused_in_capture("cublasLtCreate")) return CUBLAS_STATUS_NOT_SUPPORTED;
  *h = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  *d = new cublasLtMatmulDescOpaque_t{};
  new ((*d)->data) Desc{compute, scale};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  if (!d || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  Desc& m = desc(d);
  auto get = [&](auto& field) {
    if (size != sizeof field) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&field, buf, size);
    return CUBLAS_STATUS_SUCCESS;
  };
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return get(m.ta);
    case CUBLASLT_MATMUL_DESC_TRANSB: return get(m.tb);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return get(m.epilogue);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return get(m.bias);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: {
      int32_t t = 0;
      if (size != sizeof t) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&t, buf, size);
      m.bias_type = t;
      return CUBLAS_STATUS_SUCCESS;
    }
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  *l = new cublasLtMatrixLayoutOpaque_t{};
  new ((*l)->data) Layout{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = new cublasLtMatmulPreferenceOpaque_t{};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t,
                                                    const void* buf, size_t) {
  return p && buf ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t* results, int* found) {
  if (!h || !d || !a || !b || !c || !dd || !pref || requested < 1 || !results || !found)
    return CUBLAS_STATUS_INVALID_VALUE;
  *found = 0;
  if (simt::setup_refused_in_capture("cublasLtMatmulAlgoGetHeuristic")) return CUBLAS_STATUS_NOT_SUPPORTED;
  const cublasStatus_t st = check(desc(d), layout(a), layout(b), layout(c), layout(dd));
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (simt::refused("lt-heuristic")) return CUBLAS_STATUS_SUCCESS;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t dsc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t ad, const void* B, cublasLtMatrixLayout_t bd, const void* beta,
                              const void* C, cublasLtMatrixLayout_t cd, void* D, cublasLtMatrixLayout_t dd,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
  (void)algo, (void)workspace, (void)workspace_bytes, (void)stream;
  if (!h || !dsc || !alpha || !beta || !ad || !bd || !cd || !dd) return CUBLAS_STATUS_INVALID_VALUE;
  const Desc d = desc(dsc);
  const Layout a = layout(ad), b = layout(bd), c = layout(cd), dl = layout(dd);
  const cublasStatus_t st = check(d, a, b, c, dl);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const uint64_t m = dl.rows, n = dl.cols, k = d.ta != CUBLAS_OP_N ? a.rows : a.cols;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool bias = d.epilogue == CUBLASLT_EPILOGUE_BIAS;
  if ((k > 0 && (!simt::is_device_pointer(A) || !simt::is_device_pointer(B))) || !simt::is_device_pointer(D) ||
      (be != 0.f && !simt::is_device_pointer(C)) || (bias && !simt::is_device_pointer(d.bias)))
    return CUBLAS_STATUS_EXECUTION_FAILED;  // the real library would fault on host pointers
  auto run = [=]() {
    auto es = [](int t) { return t == CUDA_R_32F ? 4.0 : 2.0; };
    const double bytes = (double)m * k * es(a.type) + (double)k * n * es(b.type) +
                         (double)m * n * es(dl.type) + (be != 0.f ? (double)m * n * es(c.type) : 0.0) +
                         (bias ? (double)m * es(d.bias_type >= 0 ? d.bias_type : dl.type) : 0.0);
    const char* name = bias ? (be != 0.f ? "cublasLtMatmul(bias+residual)" : "cublasLtMatmul(bias)")
                            : (be != 0.f ? "cublasLtMatmul(residual)" : "cublasLtMatmul");
    simt::census::on_library(name, 2.0 * m * n * k, bytes, half_type(a.type) && half_type(b.type),
                             simt::replaying());
    if (simt::census::dry()) return;
    matmul(d, al, A, a, B, b, be, C, c, D, dl);
  };
  // A graph node keeps this call's descriptor values and scalars; the matrices are read when it runs.
  if (simt::capturing())
    simt::capture(run);
  else
    run();
  return CUBLAS_STATUS_SUCCESS;
}
