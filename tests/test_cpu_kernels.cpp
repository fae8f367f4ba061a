// The CPU's GEMM kernels (src/backend/cpu/blas_kernels.h): the kernel set OpenBLAS runs is never
// narrower than the CPU's widest vector extension it has a set for. The CPU's extensions are read
// here from /proc/cpuinfo's flags (the kernel's account), not from sd-gen's own cpuid code.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "backend/cpu/blas_kernels.h"
#include "test_helpers.h"

using namespace sdgen;
using namespace test_helpers;

namespace {

std::set<std::string> cpuinfo_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> s;
      for (std::string w; words >> w;) s.insert(w);
      return s;
    }
  return {};
}

// The widest level of the x86 kernel sets that /proc/cpuinfo's flags allow.
VectorLevel widest_level_from_cpuinfo() {
  const std::set<std::string> f = cpuinfo_flags();
  auto has = [&](const char* x) { return f.count(x) > 0; };
  const bool avx512 = has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq");
  if (avx512 && has("avx512_bf16")) return VectorLevel::Avx512Bf16;
  if (avx512) return VectorLevel::Avx512;
  if (has("avx2") && has("fma")) return VectorLevel::Avx2;
  if (has("avx")) return VectorLevel::Avx;
  return VectorLevel::Sse;
}

CpuFeatures cpu(const char* vendor, int level) {  // 0 SSE .. 4 AVX-512 with BF16, 5 also AMX
  CpuFeatures f;
  f.vendor = vendor;
  f.avx = level >= 1;
  f.avx2 = f.fma = level >= 2;
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = level >= 3;
  f.avx512_bf16 = level >= 4;
  f.amx_tile = f.amx_bf16 = f.avx512_fp16 = level >= 5;
  return f;
}

}  // namespace

TEST(CpuKernels, OpenblasCoreLevels) {
  EXPECT_EQ(openblas_core_level("Prescott"), VectorLevel::Sse);
  EXPECT_EQ(openblas_core_level("NEHALEM"), VectorLevel::Sse);
  EXPECT_EQ(openblas_core_level("Sandybridge"), VectorLevel::Avx);
  EXPECT_EQ(openblas_core_level("Haswell"), VectorLevel::Avx2);
  EXPECT_EQ(openblas_core_level("Zen"), VectorLevel::Avx2);
  EXPECT_EQ(openblas_core_level("SkylakeX"), VectorLevel::Avx512);
  EXPECT_EQ(openblas_core_level("Cooperlake"), VectorLevel::Avx512Bf16);
  EXPECT_EQ(openblas_core_level("a core from the future"), VectorLevel::Sse);
}

TEST(CpuKernels, KernelSetForEachCpuClass) {
  EXPECT_EQ(openblas_core_for(cpu("GenuineIntel", 5)), "Cooperlake");  // Sapphire/Emerald Rapids: AMX
  EXPECT_EQ(openblas_core_for(cpu("AuthenticAMD", 4)), "Cooperlake");  // Zen 4
  EXPECT_EQ(openblas_core_for(cpu("GenuineIntel", 3)), "SkylakeX");    // Skylake-SP, Ice Lake
  EXPECT_EQ(openblas_core_for(cpu("GenuineIntel", 2)), "Haswell");
  EXPECT_EQ(openblas_core_for(cpu("AuthenticAMD", 2)), "Zen");         // Zen 1-3
  EXPECT_EQ(openblas_core_for(cpu("GenuineIntel", 1)), "Sandybridge");
  EXPECT_EQ(openblas_core_for(cpu("GenuineIntel", 0)), "");
}

TEST(CpuKernels, StartUpCheckDecides) {
  const CpuFeatures emerald = cpu("GenuineIntel", 5);
  // The report's machine: OpenBLAS 0.3.21 did not know it and ran Prescott: start again.
  BlasKernelCheck k = blas_kernel_check("Prescott", nullptr, emerald);
  EXPECT_EQ(k.reexec_with, "Cooperlake");
  EXPECT_TRUE(k.warning.empty());
  // Started again (or named by the user) and still narrow: one warning naming both, no loop.
  k = blas_kernel_check("Prescott", "Prescott", emerald);
  EXPECT_TRUE(k.reexec_with.empty());
  EXPECT_NE(k.warning.find("Prescott kernels (SSE)"), std::string::npos) << k.warning;
  EXPECT_NE(k.warning.find("OPENBLAS_CORETYPE=Cooperlake"), std::string::npos) << k.warning;
  // The right set, or a wider one than needed: nothing.
  EXPECT_EQ(blas_kernel_check("Cooperlake", nullptr, emerald).reexec_with, "");
  EXPECT_EQ(blas_kernel_check("Zen", nullptr, cpu("AuthenticAMD", 2)).reexec_with, "");
  EXPECT_EQ(blas_kernel_check("Haswell", nullptr, cpu("AuthenticAMD", 2)).reexec_with, "");
  // A CPU without AVX, or a BLAS that cannot say: nothing to hold it to.
  EXPECT_EQ(blas_kernel_check("Prescott", nullptr, cpu("GenuineIntel", 0)).reexec_with, "");
  EXPECT_EQ(blas_kernel_check("", nullptr, emerald).reexec_with, "");
}

// sd-gen as installed runs kernels as wide as this CPU allows (after its start-up check), and says
// which on --version.
TEST(CpuKernels, SdGenRunsTheWidestKernelsThisCpuHas) {
  const CliRun v = run_sdgen("--version");
  ASSERT_EQ(v.code, 0) << v.err;
  EXPECT_TRUE(v.err.empty()) << v.err;
  const size_t at = v.out.find("GEMM: ");
  ASSERT_NE(at, std::string::npos) << v.out;
  const std::string gemm = v.out.substr(at, v.out.find('\n', at) - at);
  const size_t comma = gemm.find(", "), end = gemm.find(" kernels");
  ASSERT_TRUE(comma != std::string::npos && end != std::string::npos) << gemm;
  const std::string core = gemm.substr(comma + 2, end - comma - 2);
  EXPECT_GE(openblas_core_level(core), widest_level_from_cpuinfo())
      << gemm << ": narrower than this CPU's " << vector_level_name(widest_level_from_cpuinfo());
  EXPECT_NE(v.out.find("CPU: "), std::string::npos) << v.out;
}

// --version names what bf16 GEMMs run on: oneDNN's bf16 kernels where built in and the CPU has bf16
// dot products (from /proc/cpuinfo, not from sd-gen's own detection), else the widening; and
// SDGEN_BF16_GEMM=openblas turns oneDNN off.
TEST(CpuKernels, VersionNamesTheBf16Gemm) {
  const CliRun v = run_sdgen("--version");
  ASSERT_EQ(v.code, 0) << v.err;
  const size_t at = v.out.find("bf16 GEMM: ");
  ASSERT_NE(at, std::string::npos) << v.out;
  const std::string line = v.out.substr(at, v.out.find('\n', at) - at);
#if defined(SDGEN_TEST_ONEDNN)
  if (widest_level_from_cpuinfo() >= VectorLevel::Avx512Bf16) {
    EXPECT_NE(line.find("bf16 GEMM: oneDNN 2."), std::string::npos) << line;
    EXPECT_NE(line.find("bf16"), line.rfind("bf16")) << line << ": no bf16 kernel named";
  } else {
    EXPECT_NE(line.find("widened to fp32 (this CPU"), std::string::npos) << line;
  }
#else
  EXPECT_EQ(line, "bf16 GEMM: widened to fp32 (built without oneDNN)");
#endif
  const CliRun off = run_sdgen("--version", "SDGEN_BF16_GEMM=openblas");
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_EQ(off.out.find("bf16 GEMM: oneDNN"), std::string::npos) << off.out;
}

// A kernel set the user names is kept; when it is narrower than the CPU's, one warning says so.
TEST(CpuKernels, NamedNarrowKernelsAreWarnedAboutOnce) {
  if (widest_level_from_cpuinfo() == VectorLevel::Sse) GTEST_SKIP() << "this CPU has no wider set";
  const CliRun v = run_sdgen("--version", "OPENBLAS_CORETYPE=Prescott");
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.out.find("Prescott kernels"), std::string::npos) << v.out;
  EXPECT_EQ(std::count(v.err.begin(), v.err.end(), '\n'), 1) << v.err;
  EXPECT_NE(v.err.find("sd-gen: warning: OpenBLAS runs its Prescott kernels"), std::string::npos) << v.err;
}
