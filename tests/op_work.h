// The op table's work (what one run of a case costs: FLOPs and bytes moved, the perf mode's
// denominators) and its benchmark-only rows, for benchmarks/op_perf.cpp and tests/test_op_work.cpp.
// The matrix products' FLOPs are counted where their cases are made (tests/op_cases.h: conv,
// linear, attention); every other op is counted here per output element.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "op_cases.h"

namespace sdgen::optest {

struct Work {
  double flops = 0;
  double bytes = 0;
};

// FLOPs per output element of the ops that are not matrix products, counted from each op's
// formula: one per add, multiply, divide or compare, one per exp / erf / sin (a transcendental is
// one FLOP here, although it costs several instructions; these ops are judged by GB/s, and the
// FLOP figure only says how much arithmetic sits behind each byte). Data movement counts 0.
//   silu x/(1+e^-x): 4; quick_gelu x·σ(1.702x): 5; gelu ½x(1+erf(x/√2)): 5; geglu value·gelu(gate): 6
//   relu (a compare): 1; tanh: 1
//   softmax max, subtract, exp, sum, divide: 5; add, add_channel, scale: 1
//   group/layer norm sum, sum of squares (2), subtract mean, × rstd, × gamma, + beta: 7 (+4 SiLU)
//   timestep embedding: scale and sin/cos: 2
//   sampler steps (guidance, x0, direction, update; a sampler's history terms left out): 10
//   inpaint blend (a·x0, b·noise, their sum, 1 − m, two products, the sum): 7
//   image_u8 (scale, offset, clamp, round): 4
inline double flops_per_element(const OpCase& c) {
  const std::string& n = c.name;
  switch (c.op) {
    case Op::kUnary:
      if (n.rfind("relu", 0) == 0 || n.rfind("tanh", 0) == 0) return 1;
      return n.rfind("silu", 0) == 0 ? 4 : 5;
    case Op::kGeglu: return 6;
    case Op::kSoftmax: return 5;
    case Op::kAdd: case Op::kAddChannel: case Op::kScale: return 1;
    case Op::kGroupNorm: return n.rfind("gn_silu", 0) == 0 ? 11 : 7;
    case Op::kLayerNorm: return 7;
    case Op::kTimestepEmbedding: return 2;
    case Op::kSamplerStep: return 10;
    case Op::kInpaintBlend: return 7;
    case Op::kDenoised: return 6;
    case Op::kAddScaledAt: return 2;
    case Op::kGuidanceRescale: return 15;  // guide (3), two means and squared deviations (8), the mix (4)
    case Op::kImageToU8: return 4;
    default: return 0;  // upsample, pad, concat, embedding, cast, repeat: data movement
  }
}

// The work of one run of `c` on `inputs` giving `out`. Bytes are the least the op must move: every
// input read once and the output written once, in their dtypes (a kernel that reads an input twice,
// as a two-pass norm does, moves more; its GB/s by this count then tops out below the peak).
inline Work work_of(const OpCase& c, const std::vector<Tensor>& inputs, const Tensor& out) {
  Work w;
  for (const Tensor& t : inputs) w.bytes += (double)t.nbytes();
  w.bytes += (double)out.nbytes();
  w.flops = c.flops >= 0 ? c.flops : flops_per_element(c) * (double)out.numel();
  return w;
}

// Benchmark-only rows (op_perf runs them after the table; the test suites do not, as they are too
// slow for the plain reference or the emulator, and the table holds the same code paths at
// smaller shapes): the SD v1.5 shapes of the kernel benchmarks the table did not have, and the
// scalar fallbacks of the CUDA kernels (unaligned views) at those shapes.
inline const std::vector<OpCase>& perf_cases() {
  using namespace cases;
  static const std::vector<OpCase> table = [] {
    std::vector<OpCase> t;
    // UNet self-attention at the 64×64 level with both guidance images; its scalar (CUDA-core)
    // fp16 path, which the VAE's 512-wide head takes, on the 32×32 level.
    t.push_back(attention("attn_self_2x4096_h8_d40", 2, 4096, 4096, 8, 40, false));
    OpCase au = attention("attn_unaligned_2x1024_h8_d80", 2, 1024, 1024, 8, 80, false);
    const Shape qs{2, 1024, 640};
    au.inputs = {{{2 * 1024 * 640 + 1}}, {{2 * 1024 * 640 + 1}}, {{2 * 1024 * 640 + 1}}};
    au.run = [qs](Backend& b, const Ins& in, DType) {
      return b.attention(unaligned(in[0], qs), unaligned(in[1], qs), unaligned(in[2], qs), 8,
                         1.0f / std::sqrt(80.0f), false);
    };
    t.push_back(au);
    // GroupNorm: the 32×32 skip concatenation (960 channels, transformer norm), the VAE decoder's
    // last norm (512×512×128), a resnet norm on an unaligned view (the scalar kernel).
    t.push_back(group_norm("gn_6x32x32x960_g32", {6, 32, 32, 960}, 32, 1e-6f, false));
    t.push_back(group_norm("gn_silu_1x512x512x128_g32", {1, 512, 512, 128}, 32, 1e-6f, true));
    OpCase gu = group_norm("gn_silu_unaligned_6x32x32x640_g32", {6 * 32 * 32 * 640 + 1}, 32, 1e-5f, true);
    gu.inputs[1].shape = gu.inputs[2].shape = {640};
    gu.run = [](Backend& b, const Ins& in, DType) {
      return b.group_norm(unaligned(in[0], {6, 32, 32, 640}), in[1], in[2], 32, 1e-5f, true);
    };
    t.push_back(gu);
    // The transformer's elementwise ops on unaligned views at their SD shapes.
    t.push_back({"geglu_unaligned_2x4096x2560",
                 {{{2 * 4096 * 2560 + 1}, 2.0f}},
                 [](Backend& b, const Ins& in, DType) { return b.geglu(unaligned(in[0], {2, 4096, 2560})); },
                 tol::kPointwise});
    t.push_back({"add_unaligned_2x64x64x320",
                 {{{2 * 64 * 64 * 320 + 1}}, {{2, 64, 64, 320}}},
                 [](Backend& b, const Ins& in, DType) { return b.add(unaligned(in[0], {2, 64, 64, 320}), in[1]); },
                 tol::kExact});
    t.push_back({"ln_unaligned_2x4096x320",
                 {{{2 * 4096 * 320 + 1}}, {{320}, 0.1f, 1.0f}, {{320}, 0.1f}},
                 [](Backend& b, const Ins& in, DType) {
                   return b.layer_norm(unaligned(in[0], {2, 4096, 320}), in[1], in[2], 1e-5f);
                 },
                 tol::kNorm});
    // The VAE encoder's downsampler pads at the SD 512² levels' shapes (one image).
    for (const Shape& sh : {Shape{1, 512, 512, 128}, Shape{1, 256, 256, 256}, Shape{1, 128, 128, 512}})
      t.push_back({"pad_" + std::to_string(sh[0]) + "x" + std::to_string(sh[1]) + "x" + std::to_string(sh[2]) + "x" +
                       std::to_string(sh[3]) + "_b1r1",
                   {{sh}},
                   [](Backend& b, const Ins& in, DType) { return b.pad(in[0], 0, 1, 0, 1); },
                   tol::kExact});
    for (OpCase& c : t) c.op = op_of(c.name);
    return t;
  }();
  return table;
}

}  // namespace sdgen::optest
