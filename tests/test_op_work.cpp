// The op table's work figures (tests/op_work.h work_of, the perf mode's denominators) against
// values computed by hand from the SD v1.5 layer shapes, written out as numbers so that a wrong
// formula in the table cannot also be the expected value.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "op_work.h"

namespace sdgen {
namespace {

const optest::OpCase& find_case(const std::string& name) {
  for (const optest::OpCase& c : optest::op_cases())
    if (c.name == name) return c;
  for (const optest::OpCase& c : optest::perf_cases())
    if (c.name == name) return c;
  throw std::logic_error("no case " + name);
}

// The work of one run of `name` on the fast CPU backend in `dt`.
optest::Work run_work(const std::string& name, DType dt) {
  static std::unique_ptr<Backend> cpu = make_cpu_backend(false);
  const optest::OpCase& c = find_case(name);
  const std::vector<Tensor> in = optest::make_inputs(c, dt, Device::CPU);
  return optest::work_of(c, in, c.run(*cpu, in, dt));
}

TEST(OpWork, MatrixProductFlopsOnSdShapes) {
  // UNet 64×64 level, 3×3 320 -> 320, batch 2: 2·2·64·64·320·320·9.
  EXPECT_EQ(find_case("conv3x3_2x64x64x320").flops, 15099494400.0);
  // Its downsampler (stride 2: 32×32 outputs): 2·2·32·32·320·320·9.
  EXPECT_EQ(find_case("conv3x3_s2_2x64x64x320").flops, 3774873600.0);
  // GEGLU input projection: 2·(2·4096 rows)·2560·320.
  EXPECT_EQ(find_case("linear_2x4096x320_to_2560").flops, 13421772800.0);
  // Self-attention at 64×64, 8 heads × 40: 4·1·8·4096²·40.
  EXPECT_EQ(find_case("attn_self_1x4096_h8_d40").flops, 21474836480.0);
  // CLIP's causal attention: 77·78/2 = 3003 visible pairs per head, 4·2·12·3003·64.
  EXPECT_EQ(find_case("attn_causal_2x77_h12_d64").flops, 18450432.0);
  // One query seeing the first of 9 keys: 4·1·1·1·4.
  EXPECT_EQ(find_case("attn_lq1_lk9_causal").flops, 16.0);
}

TEST(OpWork, BytesAreInputsReadOnceAndOutputWrittenOnce) {
  // add on 2×64×64×320 = 2621440 elements: two inputs and the output, 4 or 2 bytes each.
  optest::Work w = run_work("add_2x64x64x320", DType::F32);
  EXPECT_EQ(w.bytes, 31457280.0);
  EXPECT_EQ(w.flops, 2621440.0);
  EXPECT_EQ(run_work("add_2x64x64x320", DType::F16).bytes, 15728640.0);
  // conv_in: x 2·64·64·4, w 320·3·3·4, bias 320, out 2·64·64·320, fp32; 2·2·64·64·320·9·4 FLOPs.
  w = run_work("conv_in_2x64x64x4_to_320", DType::F32);
  EXPECT_EQ(w.bytes, 10664192.0);
  EXPECT_EQ(w.flops, 188743680.0);
  // GroupNorm + SiLU on 945 elements, 9 channels: x, gamma, beta read, y written; 11 FLOPs each.
  w = run_work("gn_silu_odd_3x7x5x9_g3", DType::F32);
  EXPECT_EQ(w.bytes, 7632.0);
  EXPECT_EQ(w.flops, 10395.0);
}

TEST(OpWork, PerfRowsHaveTheirOwnNamesAndAKnownOp) {
  std::set<std::string> names;
  for (const optest::OpCase& c : optest::op_cases()) names.insert(c.name);
  for (const optest::OpCase& c : optest::perf_cases()) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name << " is also a table row";
    EXPECT_EQ(c.op, optest::op_of(c.name));
  }
  // The batch-2 self-attention of the perf rows: 4·2·8·4096²·40.
  EXPECT_EQ(find_case("attn_self_2x4096_h8_d40").flops, 42949672960.0);
}

}  // namespace
}  // namespace sdgen
