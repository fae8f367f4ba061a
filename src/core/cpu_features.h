// What this CPU offers the CPU backend: its name and the vector and matrix extensions the OS lets
// programs use (cpuid, with the register state the OS saves checked through xgetbv), so that the
// GEMM library's kernels can be held to them (backend/cpu/blas_kernels.h) and sd-gen --version and
// bench can name them.
#pragma once
#include <string>

namespace sdgen {

struct CpuFeatures {
  std::string vendor;      // "GenuineIntel", "AuthenticAMD"
  std::string model_name;  // the brand string
  int family = 0, model = 0;
  bool avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_fp16 = false;
  bool amx_tile = false, amx_bf16 = false, amx_fp16 = false;
  // AVX-512 as the GEMM kernels use it (F, BW, VL, DQ: Skylake-SP and Zen 4 onwards).
  bool avx512() const { return avx512f && avx512bw && avx512vl && avx512dq; }
  // "AVX2 FMA AVX-512 AVX512-BF16 AMX-BF16", the widest last; "SSE" when none.
  std::string extensions() const;
};

// This machine's (read once).
const CpuFeatures& cpu_features();

}  // namespace sdgen
