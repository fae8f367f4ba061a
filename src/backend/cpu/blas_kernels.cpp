#include "backend/cpu/blas_kernels.h"

#include <algorithm>
#include <cctype>

// OpenBLAS's own queries; weak, so that a build against another BLAS links and reports none.
extern "C" char* openblas_get_corename(void) __attribute__((weak));
extern "C" char* openblas_get_config(void) __attribute__((weak));

namespace sdgen {

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return (char)std::tolower(c); });
  return s;
}
}  // namespace

const char* vector_level_name(VectorLevel l) {
  switch (l) {
    case VectorLevel::Sse: return "SSE";
    case VectorLevel::Avx: return "AVX";
    case VectorLevel::Avx2: return "AVX2";
    case VectorLevel::Avx512: return "AVX-512";
    case VectorLevel::Avx512Bf16: return "AVX512-BF16";
  }
  return "?";
}

VectorLevel openblas_core_level(const std::string& core) {
  const std::string c = lower(core);
  if (c == "cooperlake" || c == "sapphirerapids") return VectorLevel::Avx512Bf16;
  if (c == "skylakex") return VectorLevel::Avx512;
  if (c == "haswell" || c == "zen" || c == "excavator") return VectorLevel::Avx2;
  if (c == "sandybridge" || c == "bulldozer" || c == "piledriver" || c == "steamroller") return VectorLevel::Avx;
  return VectorLevel::Sse;  // prescott, core2, penryn, nehalem, atom, barcelona, ... and unknown names
}

std::string openblas_core_for(const CpuFeatures& f) {
  // OpenBLAS 0.3.21 has no AMX set: its widest is Cooperlake's (AVX-512 with BF16 dot products).
  if (f.avx512() && f.avx512_bf16) return "Cooperlake";
  if (f.avx512()) return "SkylakeX";
  if (f.avx2 && f.fma) return f.vendor == "AuthenticAMD" ? "Zen" : "Haswell";
  if (f.avx) return "Sandybridge";
  return "";
}

std::string blas_library() {
  if (!openblas_get_config) return "a BLAS without OpenBLAS's kernel query";
  std::string config = openblas_get_config();
  return config.substr(0, config.find(' ', config.find(' ') + 1));  // "OpenBLAS 0.3.21"
}

std::string blas_core_in_use() { return openblas_get_corename ? openblas_get_corename() : ""; }

std::string blas_description() {
  const std::string core = blas_core_in_use();
  if (core.empty()) return blas_library();
  return blas_library() + ", " + core + " kernels (" + vector_level_name(openblas_core_level(core)) + ")";
}

BlasKernelCheck blas_kernel_check(const std::string& core_in_use, const char* coretype_env, const CpuFeatures& f) {
  BlasKernelCheck k;
  const std::string best = openblas_core_for(f);
  if (core_in_use.empty() || best.empty() || openblas_core_level(core_in_use) >= openblas_core_level(best)) return k;
  if (!coretype_env) {
    k.reexec_with = best;
    return k;
  }
  k.warning = "OpenBLAS runs its " + core_in_use + " kernels (" + vector_level_name(openblas_core_level(core_in_use)) +
              ") on this CPU, which has " + vector_level_name(openblas_core_level(best)) + " (OPENBLAS_CORETYPE=" +
              coretype_env + "); OPENBLAS_CORETYPE=" + best + " is several times faster";
  return k;
}

}  // namespace sdgen
