// The CUDA backend, through the SIMT emulator (simt_tests) or on a real GPU (cuda_ops_tests, CUDA
// builds): every case of the op-test table (tests/op_cases.h)
// run on the emulated CUDA backend against the plain CPU backend, in fp32, fp16 and bf16. (The emulated
// launch time of one realistic kernel is benchmarks/bench_emu_groupnorm.) Ops the CUDA backend does not implement yet are
// reported as skipped, by name.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "../op_cases.h"
#include "op_backends.h"
#include "backend/cuda/cuda_backend.h"
#include "sdgen/error.h"

namespace sdgen {
namespace {

using op_backends::cuda_emu;
using op_backends::plain_cpu;

class CudaOps : public testing::TestWithParam<size_t> {
 protected:
  // The same assertions as the CPU table (tests/op_cases.h), guard bytes included: every device
  // allocation of these tests carries them.
  void check(DType dtype) {
    const optest::OpCase& c = optest::op_cases()[GetParam()];
    if (!cuda_emu().supports(c.op, dtype) || (c.casts_bf16 && !cuda_emu().supports(Op::kCast, DType::BF16)))
      GTEST_SKIP() << "the CUDA backend of this build does not run " << c.name;
    set_device_guard_bytes(true);
    optest::expect_case_matches(c, cuda_emu(), plain_cpu(), dtype);
  }
};

TEST_P(CudaOps, Fp32) { check(DType::F32); }
TEST_P(CudaOps, Fp16) { check(DType::F16); }
TEST_P(CudaOps, Bf16) { check(DType::BF16); }

INSTANTIATE_TEST_SUITE_P(CudaEmu, CudaOps, testing::Range<size_t>(0, optest::op_cases().size()),
                         [](const testing::TestParamInfo<size_t>& info) {
                           return optest::op_cases()[info.param].name;
                         });


}  // namespace
}  // namespace sdgen
