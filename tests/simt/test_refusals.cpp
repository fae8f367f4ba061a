// The refusal knobs (SIMT_REFUSE, simt_refuse.h) bite: under each one the emulated CUDA backend
// takes its fallback (observed through the census's library calls or the cuDNN twin's engine) and
// still matches the plain CPU backend within the op table's tolerances. Without this, the
// refusal_* ctest entries could pass while the twins refused nothing. The backend caches plans per
// shape, so every case here has a shape of its own that no other test in the process uses.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "../op_cases.h"
#include "op_backends.h"
#include "simt_census.h"
#include "simt_refuse.h"

namespace sdgen {
namespace {

using optest::cases::ConvAdd;
using Calls = std::map<std::string, uint64_t>;

using op_backends::cuda_emu;
using op_backends::plain_cpu;

// SIMT_REFUSE=knob for one scope (unset for an empty knob); the caller's value is restored.
class Refuse {
 public:
  explicit Refuse(const char* knob) {
    if (const char* v = std::getenv("SIMT_REFUSE")) saved_ = v;
    if (*knob)
      setenv("SIMT_REFUSE", knob, 1);
    else
      unsetenv("SIMT_REFUSE");
  }
  ~Refuse() {
    if (saved_)
      setenv("SIMT_REFUSE", saved_->c_str(), 1);
    else
      unsetenv("SIMT_REFUSE");
  }
  Refuse(const Refuse&) = delete;
  Refuse& operator=(const Refuse&) = delete;

 private:
  std::optional<std::string> saved_;
};

// Runs `c` in `dt` under `knob`, asserting the op table's agreement with the CPU backend; returns
// the library calls the emulated backend made.
Calls run_under(const char* knob, const optest::OpCase& c, DType dt) {
  Refuse refuse(knob);
  const bool was = simt::census::enabled();
  simt::census::reset();
  simt::census::enable(true);
  set_device_guard_bytes(true);
  optest::expect_case_matches(c, cuda_emu(), plain_cpu(), dt);
  simt::census::enable(was);
  const auto& phases = simt::census::phases();
  const auto run = phases.find("run");
  return run == phases.end() ? Calls{} : run->second.library_calls;
}

uint64_t count(const Calls& calls, const std::string& name) {
  const auto it = calls.find(name);
  return it == calls.end() ? 0 : it->second;
}

TEST(Refusals, LtHeuristicSendsLinearToGemmEx) {
  const auto lin = [](int64_t k) {
    return optest::cases::linear("refusal_linear", {3, 11, k}, 13, true, true, /*residual=*/true);
  };
  Calls calls = run_under("", lin(17), DType::F32);
  EXPECT_EQ(count(calls, "cublasLtMatmul(bias+residual)"), 1u);
  EXPECT_EQ(count(calls, "cublasGemmEx"), 0u);
  calls = run_under("lt-heuristic", lin(19), DType::F32);
  EXPECT_EQ(count(calls, "cublasLtMatmul(bias+residual)"), 0u);
  EXPECT_EQ(count(calls, "cublasGemmEx"), 1u);
  calls = run_under("lt-heuristic", lin(23), DType::F16);
  EXPECT_EQ(count(calls, "cublasGemmEx"), 1u);
}

#if SDGEN_HAVE_CUDNN
const char kConv1[] = "cudnnBackendExecute(convolution)", kConv2[] = "cudnnBackendExecute(convolution+add)",
           kConv3[] = "cudnnBackendExecute(convolution+add+add)";

optest::OpCase conv(int64_t c, ConvAdd add) {
  return optest::cases::conv("refusal_conv", {2, 6, 5, c}, 8, 3, 1, 1, true, true, add);
}

TEST(Refusals, CudnnFusionKnobsShortenTheGraph) {
  for (ConvAdd add : {ConvAdd::kResidual, ConvAdd::kPerImage}) {
    const int64_t c = add == ConvAdd::kResidual ? 3 : 4;  // 3..8 here: shapes of their own
    Calls calls = run_under("", conv(c, add), DType::F32);
    EXPECT_EQ(count(calls, kConv3), 1u);
    calls = run_under("cudnn-bias-fusion-only", conv(c + 2, add), DType::F16);
    EXPECT_EQ(count(calls, kConv3), 0u);
    EXPECT_EQ(count(calls, kConv2), 1u);
    calls = run_under("cudnn-fusion", conv(c + 4, add), DType::F16);
    EXPECT_EQ(count(calls, kConv3) + count(calls, kConv2), 0u);
    EXPECT_EQ(count(calls, kConv1), 1u);
  }
}

// fp16 takes engine 0 (tensor cores) unless a knob rules it out; fp32 never takes it (TF32).
TEST(Refusals, CudnnEngineKnobsTakeTheNextEngine) {
  run_under("", conv(9, ConvAdd::kNone), DType::F16);
  EXPECT_EQ(simt::cudnn_last_engine(), 0);
  int64_t c = 10;
  for (const char* knob : {"cudnn-finalize", "cudnn-nondeterministic", "cudnn-workspace"}) {
    SCOPED_TRACE(knob);
    run_under(knob, conv(c++, ConvAdd::kNone), DType::F16);
    EXPECT_EQ(simt::cudnn_last_engine(), 1);
  }
}
#endif

}  // namespace
}  // namespace sdgen
