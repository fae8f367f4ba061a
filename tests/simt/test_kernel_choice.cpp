// Which kernel the CUDA backend launches where the choice depends on the device's architecture, on
// the emulated backend: the census names the kernels a case launched, and the case itself meets the
// op table's assertions against the CPU backend on each architecture.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "../op_cases.h"
#include "op_backends.h"
#include "backend/cuda/cuda_backend.h"
#include "simt_census.h"
#include "simt_runtime.h"

namespace sdgen {
namespace {

using op_backends::cuda_emu;
using op_backends::plain_cpu;

const optest::OpCase& op_case(const std::string& name) {
  for (const optest::OpCase& c : optest::op_cases())
    if (c.name == name) return c;
  throw std::runtime_error("no op case " + name);
}

// The kernels `c` launched in `dt` on the emulated architecture `sm`, by name.
std::map<std::string, uint64_t> kernels_of(const optest::OpCase& c, DType dt, int sm) {
  const int arch = simt::emulated_arch();
  const bool was = simt::census::enabled();
  simt::set_emulated_arch(sm);
  simt::census::reset();
  simt::census::enable(true);
  set_device_guard_bytes(true);
  optest::expect_case_matches(c, cuda_emu(), plain_cpu(), dt);
  simt::census::enable(was);
  simt::set_emulated_arch(arch);
  std::map<std::string, uint64_t> out;
  const auto& phases = simt::census::phases();
  if (const auto run = phases.find("run"); run != phases.end())
    for (const auto& [name, stat] : run->second.kernels) out[name] = stat.launches;
  return out;
}

// bf16 attention runs on tensor cores from sm_80 (the mma kernel issuing bf16 mma.sync) and on the
// fma kernel on sm_75, which has no bf16 mma.sync; fp16 takes the mma kernel on both (sm_75 as two
// m16n8k8). Heads of 40 (SD v1.5's) and 160, each within the op table's bound on each architecture.
TEST(CudaKernelChoice, Bf16AttentionOnTensorCoresFromSm80) {
  for (const char* name : {"attn_odd_tokens_1x131x67_h3_d40", "attn_cross_2x130x77_h2_d160"}) {
    SCOPED_TRACE(name);
    const optest::OpCase& c = op_case(name);
    std::map<std::string, uint64_t> k = kernels_of(c, DType::BF16, 80);
    EXPECT_EQ(k["flash_attention_mma_kernel"], 1u);
    EXPECT_EQ(k.count("flash_attention_fma_kernel"), 0u);
    k = kernels_of(c, DType::BF16, 75);
    EXPECT_EQ(k["flash_attention_fma_kernel"], 1u);
    EXPECT_EQ(k.count("flash_attention_mma_kernel"), 0u);
    for (int sm : {75, 80}) {
      k = kernels_of(c, DType::F16, sm);
      EXPECT_EQ(k["flash_attention_mma_kernel"], 1u) << "sm_" << sm;
    }
  }
}

}  // namespace
}  // namespace sdgen
