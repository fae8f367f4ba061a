// The CUDA backend, through the SIMT emulator (simt_tests) or on a real GPU (cuda_ops_tests, CUDA
// builds): every case of the op-test table (tests/op_cases.h)
// run on the emulated CUDA backend against the plain CPU backend, in fp32 and fp16, plus the
// emulated launch time of one realistic kernel. Ops the CUDA backend does not implement yet are
// reported as skipped, by name.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "../op_cases.h"
#include "backend/cuda/cuda_backend.h"
#include "sdgen/error.h"
#if defined(SDGEN_SIMT)
#include "simt_runtime.h"
#endif

namespace sdgen {
namespace {

Backend& cuda_emu() {
  static std::unique_ptr<Backend> b = make_cuda_backend();
  return *b;
}
Backend& plain_cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(true);
  return *b;
}

class CudaOps : public testing::TestWithParam<size_t> {
 protected:
  void check(DType dtype) {
    const optest::OpCase& c = optest::op_cases()[GetParam()];
    if (dtype == DType::F16 && !c.fp16) GTEST_SKIP() << "fp16 pass off for this case";
    optest::CaseResult r;
    try {
      r = optest::run_case(c, cuda_emu(), plain_cpu(), dtype);
    } catch (const Error& e) {
      if (std::string(e.what()).find("not implemented on CUDA yet") != std::string::npos)
        GTEST_SKIP() << e.what();
      throw;
    }
    const optest::Comparison& m = r.cmp;
    std::printf("[ op ] %-38s %s max_abs %.3g  nmse %.3g  err/bound %.3g\n", c.name.c_str(),
                dtype_name(dtype), m.max_abs, m.nmse, m.worst);
    ASSERT_TRUE(m.shape_ok) << "output shape or dtype differs";
    EXPECT_EQ(m.special_mismatch, 0)
        << "NaN/Inf disagreement, first at " << m.first_special << ": out "
        << r.out[m.first_special] << " ref " << r.ref[m.first_special];
    EXPECT_LE(m.nmse, r.tol.nmse);
    if (m.worst_index >= 0) {
      EXPECT_LE(m.worst, 1.0) << "worst element " << m.worst_index << ": out "
                              << r.out[m.worst_index] << " ref " << r.ref[m.worst_index]
                              << " (atol " << r.tol.atol << ", rtol " << r.tol.rtol << ")";
    }
  }
};

TEST_P(CudaOps, Fp32) { check(DType::F32); }
TEST_P(CudaOps, Fp16) { check(DType::F16); }

INSTANTIATE_TEST_SUITE_P(CudaEmu, CudaOps, testing::Range<size_t>(0, optest::op_cases().size()),
                         [](const testing::TestParamInfo<size_t>& info) {
                           return optest::op_cases()[info.param].name;
                         });

#if defined(SDGEN_SIMT)
// The speed the emulator must keep for CI: one launch of GroupNorm+SiLU over 2×64×64×320 (64
// blocks of 256 threads, 2.6M elements). Printed, not asserted (no timed assertions).
TEST(CudaEmuSpeed, GroupNormLaunch) {
  Backend& be = cuda_emu();  // installs the device memory hooks
  for (DType dt : {DType::F32, DType::F16}) {
    Tensor x = optest::make_tensor({2, 64, 64, 320}, optest::make_values({{2, 64, 64, 320}}, 1),
                                   dt, Device::CUDA);
    Tensor g = optest::make_tensor({320}, std::vector<float>(320, 1.f), dt, Device::CUDA);
    Tensor b = optest::make_tensor({320}, std::vector<float>(320, 0.f), dt, Device::CUDA);
    simt::Stats before = simt::stats();
    auto t0 = std::chrono::steady_clock::now();
    Tensor y = be.group_norm(x, g, b, 32, 1e-5f, true);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    simt::Stats after = simt::stats();
    std::printf("[ emu ] group_norm+silu 2x64x64x320 %s: %.3f s, %llu blocks, %llu threads, %llu "
                "fiber switches\n",
                dtype_name(dt), s, (unsigned long long)(after.blocks - before.blocks),
                (unsigned long long)(after.threads - before.threads),
                (unsigned long long)(after.switches - before.switches));
    EXPECT_EQ(y.shape(), x.shape());
  }
}
#endif

}  // namespace
}  // namespace sdgen
