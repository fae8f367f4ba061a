// CUDA linear layer: y[M, N] = x[M, K] · w[N, K]ᵀ + bias + residual in one cuBLASLt matmul: the
// bias through the BIAS epilogue and the residual as the C input (beta = 1, D ≠ C), so each is
// added in fp32 before the one rounding to the output type and neither costs a pass over memory.
// fp32 accumulation for both dtypes (CUBLAS_COMPUTE_32F: TF32 is never enabled implicitly).
// In cuBLAS's column-major view, row-major y[M, N] is the N×M matrix yᵀ = w·xᵀ, and row-major
// w[N, K] is the K×N matrix wᵀ, hence op(A) = T with lda = K; the bias runs along D's rows (the
// output features), as the epilogue broadcasts it.
// The matmul descriptor, layouts and heuristic's algorithm are made once per shape. No GELU
// epilogue is used: SD's GEGLU needs the exact erf GELU of half the projection and CLIP's
// activation is quick_gelu; cuBLASLt's GELU epilogue is the tanh approximation of a whole output.
// Where cuBLASLt offers no algorithm for a shape, cublasGemmEx and the bias/add kernels do it.
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"

#include <map>
#include <memory>
#include <tuple>

#include "common/check.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

namespace {

struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, cd = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  bool ok = false;  // cuBLASLt has an algorithm for it
  ~LtPlan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (cd) cublasLtMatrixLayoutDestroy(cd);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};


using LtKey = std::tuple<const void*, int, int64_t, int64_t, int64_t, bool, bool, int>;

// Never destroyed: a backend living in a static (the process-wide one) releases its plans from its
// destructor at exit, possibly after this map's own static destruction would have run.
std::map<LtKey, std::unique_ptr<LtPlan>>& lt_plans() {
  static auto* plans = new std::map<LtKey, std::unique_ptr<LtPlan>>;
  return *plans;
}

cudaDataType cuda_data_type(DType dt) {
  return dt == DType::F32 ? CUDA_R_32F : dt == DType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

LtPlan& lt_plan(cublasLtHandle_t h, DType dt, int64_t M, int64_t N, int64_t K, bool bias, bool residual,
                int alignment) {
  std::unique_ptr<LtPlan>& slot = lt_plans()[LtKey{h, (int)dt, M, N, K, bias, residual, alignment}];
  if (slot) return *slot;
  slot = std::make_unique<LtPlan>();
  LtPlan& p = *slot;
  const cudaDataType t = cuda_data_type(dt);
  SDGEN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  SDGEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  SDGEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  const cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  SDGEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  if (bias) {
    const cudaDataType bt = t;  // the bias is stored in the activations' dtype
    SDGEN_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
  }
  SDGEN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, t, (uint64_t)K, (uint64_t)N, K));
  SDGEN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, t, (uint64_t)K, (uint64_t)M, K));
  SDGEN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.cd, t, (uint64_t)N, (uint64_t)M, N));
  cublasLtMatmulPreference_t pref = nullptr;
  SDGEN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t max_ws = (uint64_t)kConvWorkspaceCap;
  const uint32_t align = (uint32_t)alignment;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof max_ws);
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(h, p.desc, p.a, p.b, p.cd, p.cd, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    p.algo = result.algo;
    p.workspace = result.workspaceSize;
    p.ok = true;
  }
  return p;
}

}  // namespace

Tensor CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual) {
  DType dt = x.dtype();
  int64_t K = x.dim(-1), N = w.dim(0), M = K ? x.numel() / K : 0;
  Shape s = x.shape();
  s.back() = N;
  Tensor y = Tensor::empty(s, dt, Device::CUDA);
  if (M == 0 || N == 0) return y;
  Tensor wt = as(w, dt);
  const Tensor b = as(bias, dt), r = as(residual, dt);
  const float one = 1.f, zero = 0.f;
  const void* bp = b.defined() ? b.data() : nullptr;
  const void* rp = r.defined() ? r.data() : nullptr;
  if (K > 0) {
    LtPlan& p = lt_plan(cublaslt_, dt, M, N, K, bp != nullptr, rp != nullptr,
                        common_alignment({x.data(), wt.data(), y.data(), bp, rp}));
    if (p.ok) {
      if (bp)
        SDGEN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp));
      // The workspace is a pool buffer: reused by later work on the same stream only.
      Tensor ws = p.workspace ? Tensor::empty({(int64_t)(p.workspace + 3) / 4}, DType::F32, Device::CUDA) : Tensor();
      SDGEN_CUBLAS_CHECK(cublasLtMatmul(cublaslt_, p.desc, &one, wt.data(), p.a, x.data(), p.b, rp ? &one : &zero,
                                        rp ? rp : y.data(), p.cd, y.data(), p.cd, &p.algo,
                                        ws.defined() ? ws.data() : nullptr, p.workspace, stream_));
      return y;
    }
  }
  // Fallback: GEMM (C = D), then the bias and the residual as passes of their own.
  cudaDataType t = cuda_data_type(dt);
  if (K == 0) {
    SDGEN_CUDA_CHECK(cudaMemsetAsync(y.data(), 0, y.nbytes(), stream_));
  } else {
    SDGEN_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, wt.data(), t,
                                    (int)K, x.data(), t, (int)K, &zero, y.data(), t, (int)N, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
  }
  if (bp) kernels::add_channel(y.data(), bp, y.data(), 1, M, N, dt, stream_);
  if (rp) kernels::add(y.data(), rp, y.data(), M * N, dt, stream_);
  return y;
}

size_t release_linear_plans(const void* handle) { return erase_plans_of(lt_plans(), handle); }

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
