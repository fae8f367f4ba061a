// bf16 × bf16 GEMMs with fp32 accumulation for the fast CPU backend's bf16 precision, on oneDNN's
// matmul (built in when CMake finds oneDNN: SDGEN_WITH_ONEDNN). oneDNN picks its kernels at run
// time from cpuid: AVX512-BF16 dot products (vdpbf16ps) on Zen 4 / Cooper Lake, AMX tiles on
// Sapphire Rapids. Debian's OpenBLAS 0.3.21 has no bf16 GEMM, so without this the bf16 path widens
// both operands to fp32 and runs at fp32 speed (conv.cpp, linear.cpp).
// Used only where the CPU has bf16 dot products (AVX512-BF16 or AMX-BF16): elsewhere oneDNN would
// emulate them and lose to OpenBLAS's fp32. SDGEN_BF16_GEMM=openblas forces the widening path
// (for A/B measurements in one run).
// Operands stay in place in their row-major layouts: B [N, K] is read as a transposed K×N matrix
// and oneDNN packs it per call, as OpenBLAS packs its operands, so no copy of a weight is kept.
// Primitives are made per call from descriptors; oneDNN's primitive cache turns the repeats (the
// same shapes every UNet step) into look-ups.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

#include "backend/cpu/cpu_backend.h"
#include "core/cpu_features.h"

#if defined(SDGEN_WITH_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace sdgen::cpu {

#if defined(SDGEN_WITH_ONEDNN)

namespace {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

using dt = dnnl::memory::data_type;

// b_nt: B is stored [N, K] (a weight: C = A·Bᵀ), else [K, N] (C = A·B).
dnnl::matmul::primitive_desc make_pd(int64_t M, int64_t N, int64_t K, int64_t lda, bool b_nt, int64_t ldb,
                                     int64_t ldc, bool bias, dt out, float alpha, float beta) {
  const dnnl::memory::desc a({M, K}, dt::bf16, {lda, 1});
  // B [N, K] row-major is the K×N matrix Bᵀ column-major.
  const dnnl::memory::desc b({K, N}, dt::bf16, b_nt ? dnnl::memory::dims{1, ldb} : dnnl::memory::dims{ldb, 1});
  const dnnl::memory::desc c({M, N}, out, {ldc, 1});
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::desc d = bias ? dnnl::matmul::desc(a, b, dnnl::memory::desc({1, N}, dt::f32, {N, 1}), c)
                                    : dnnl::matmul::desc(a, b, c);
  return dnnl::matmul::primitive_desc(d, attr, engine());
}

bool cpu_has_bf16_dot() {
  const CpuFeatures& f = cpu_features();
  return (f.avx512() && f.avx512_bf16) || f.amx_bf16;
}

}  // namespace

// Off while tests run the widening path (set_bf16_gemm); read on every bf16 GEMM call.
static std::atomic<bool> g_widen_forced{false};

bool bf16_gemm_available() {
  static const bool usable = [] {
    const char* force = std::getenv("SDGEN_BF16_GEMM");
    if (force && std::strcmp(force, "openblas") == 0) return false;
    return cpu_has_bf16_dot();
  }();
  return usable && !g_widen_forced.load(std::memory_order_relaxed);
}

std::string bf16_gemm_description() {
  if (!bf16_gemm_available()) {
    return cpu_has_bf16_dot() ? "widened to fp32 (SDGEN_BF16_GEMM=openblas)"
                              : "widened to fp32 (this CPU has no bf16 dot products)";
  }
  const dnnl_version_t* v = dnnl_version();
  // The kernel oneDNN picks for a UNet-like shape, e.g. "brg:avx512_core_bf16".
  const std::string impl = make_pd(256, 320, 320, 320, true, 320, 320, false, dt::f32, 1.0f, 0.0f).impl_info_str();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
         " (" + impl + ")";
}

static void gemm_bf16(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda, bool b_nt,
               const uint16_t* B, int64_t ldb, const float* bias, float beta, void* C, DType c_dtype, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const dt out = c_dtype == DType::BF16 ? dt::bf16 : dt::f32;
  const auto pd = make_pd(M, N, K, lda, b_nt, ldb, ldc, bias != nullptr, out, alpha, beta);
  const dnnl::matmul prim(pd);
  dnnl::engine& e = engine();
  // Inside an OpenMP region oneDNN runs on the calling thread alone (callers split the work);
  // outside one it threads the GEMM itself. One stream per thread: streams are not shared.
  thread_local dnnl::stream stream(e);
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, dnnl::memory(pd.src_desc(), e, const_cast<uint16_t*>(A))},
      {DNNL_ARG_WEIGHTS, dnnl::memory(pd.weights_desc(), e, const_cast<uint16_t*>(B))},
      {DNNL_ARG_DST, dnnl::memory(pd.dst_desc(), e, C)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(pd.bias_desc(), e, const_cast<float*>(bias)));
  prim.execute(stream, args);
  stream.wait();
}

#else  // built without oneDNN: the callers take the widening path

bool bf16_gemm_available() { return false; }
std::string bf16_gemm_description() { return "widened to fp32 (built without oneDNN)"; }
static void gemm_bf16(int64_t, int64_t, int64_t, float, const uint16_t*, int64_t, bool, const uint16_t*, int64_t,
               const float*, float, void*, DType, int64_t) {
  std::abort();  // unreachable: bf16_gemm_available() is false
}

#endif

bool set_bf16_gemm(bool on) {
#if defined(SDGEN_WITH_ONEDNN)
  return !g_widen_forced.exchange(!on);
#else
  return false;
#endif
}

void gemm_nt_bf16(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                  const uint16_t* B, int64_t ldb, const float* bias, float beta, void* C, DType c_dtype,
                  int64_t ldc) {
  gemm_bf16(M, N, K, alpha, A, lda, true, B, ldb, bias, beta, C, c_dtype, ldc);
}

void gemm_nn_bf16(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                  const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_bf16(M, N, K, alpha, A, lda, false, B, ldb, nullptr, beta, C, DType::F32, ldc);
}

}  // namespace sdgen::cpu
