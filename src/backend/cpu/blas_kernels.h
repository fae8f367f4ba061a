// The GEMM library's kernels on this CPU. Debian's OpenBLAS is built for every x86 core it knows
// (DYNAMIC_ARCH) and picks a kernel set at load time from cpuid; a CPU newer than the library
// knows gets its oldest set (Prescott: SSE3, no AVX), 4x slower on an AVX-512 server. The set can
// only be named before the library loads (OPENBLAS_CORETYPE), so sd-gen checks at start-up and,
// when the set in use is narrower than the CPU's widest that the library has, starts itself again
// with it named (blas_kernel_check).
#pragma once
#include <string>

#include "core/cpu_features.h"

namespace sdgen {

// What a kernel set computes with, narrowest first.
enum class VectorLevel { Sse, Avx, Avx2, Avx512, Avx512Bf16 };
const char* vector_level_name(VectorLevel l);  // "SSE", "AVX", "AVX2", "AVX-512", "AVX512-BF16"

// The level of an OpenBLAS x86-64 kernel set (its core name, any case); SSE for one it does not list.
VectorLevel openblas_core_level(const std::string& core);
// The widest OpenBLAS 0.3.21 kernel set these features can run ("" without AVX: any set will do).
std::string openblas_core_for(const CpuFeatures& f);

// The GEMM library in use: "OpenBLAS 0.3.21 ..." and its kernel set's core name ("" when the
// library is not OpenBLAS, which has no such query).
std::string blas_library();
std::string blas_core_in_use();
// "OpenBLAS 0.3.21, Cooperlake kernels (AVX512-BF16)", for --version and bench.
std::string blas_description();

// What sd-gen does at start-up about the kernel set: start again with OPENBLAS_CORETYPE=reexec_with,
// or warn (one line, without "sd-gen: warning: "), or nothing (both empty). `coretype_env` is
// OPENBLAS_CORETYPE as the process got it (nullptr: unset): a set the user named is kept and, when
// narrower than the CPU's, warned about, as is one a restart already named that did not take.
struct BlasKernelCheck {
  std::string reexec_with;
  std::string warning;
};
BlasKernelCheck blas_kernel_check(const std::string& core_in_use, const char* coretype_env, const CpuFeatures& f);

}  // namespace sdgen
