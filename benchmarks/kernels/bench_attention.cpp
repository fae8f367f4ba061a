// Kernel benchmark: flash attention (kernels/attention.cu, kernels::attention), out =
// softmax(scale·q·kᵀ)·v for every (image, head) in one launch, on SD v1.5 shapes: UNet
// self-attention at the 64×64 level (2 × 4096 tokens, 8 heads × 40), cross-attention onto the 77
// text tokens, self-attention at the 32×32 level (2 × 1024, 8 × 80) and CLIP's causal
// self-attention (2 × 77, 12 heads × 64).
// Versions (the launcher picks them; this program steers it):
//   mma      fp16, 16-byte-aligned tensors, D a multiple of 8 up to 160: tensor cores
//            (mma.sync m16n8k16, fp32 accumulation); TFLOP/s against the fp16 tensor-core peak.
//   fma      fp32: CUDA cores; against the fp32 peak.
//   fma_f16  fp16 with every pointer one element past 16-byte alignment, which sends the
//            launcher to the fp16 instantiation of the CUDA-core kernel (as for the VAE's
//            512-wide head); against the fp32 peak.
// Each run is checked against the plain CPU backend (Backend::attention) with the op table's
// attention tolerances (tests/op_cases.h), max error and PASS/FAIL printed; the program exits 1
// on any FAIL. FLOPs: 4·N·H·(score pairs)·D (Q·Kᵀ and P·V; causal counts only the pairs computed).
// On a GPU: build/benchmarks/bench_attention_gpu [--repeats N] (SD shapes; the plain CPU
// reference of the 4096-token case takes ~20 s). Emulated (CI, ctest -R KernelBench):
// build/benchmarks/bench_attention (small shapes, validation only).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kbench.h"
#include "kernels.h"

using namespace sdgen;

namespace {

struct Shape4 {
  const char* name;
  int64_t n, lq, lk;
  int heads;
  int64_t d;
  bool causal;
};

struct Version {
  const char* name;
  DType dt;
  int offset;  // elements past alignment
  kbench::Rate rate;
};

bool run(const Shape4& s, const Version& ver, const kbench::Options& opt, const kbench::Peak& peak) {
  const int64_t hd = s.heads * s.d;
  const Shape qs{s.n, s.lq, hd}, ks{s.n, s.lk, hd};
  const std::vector<float> q = kbench::random_values(qs, 0, ver.dt), k = kbench::random_values(ks, 1, ver.dt),
                           v = kbench::random_values(ks, 2, ver.dt);
  const float scale = 1.0f / std::sqrt((float)s.d);
  kbench::DeviceArray dq = kbench::upload(q, ver.dt, ver.offset), dk = kbench::upload(k, ver.dt, ver.offset),
                      dv = kbench::upload(v, ver.dt, ver.offset),
                      dout = kbench::device_array(s.n * s.lq * hd, ver.dt, ver.offset);
  auto launch = [&] {
    kernels::attention(dq.ptr, dk.ptr, dv.ptr, dout.ptr, s.n, s.lq, s.lk, s.heads, s.d, scale, s.causal, ver.dt,
                       nullptr);
  };
  launch();
  const std::vector<float> out = kbench::download(dout);
  const double ms = kbench::time_ms(opt, launch);
  Backend& ref = kbench::reference();
  const std::vector<float> expect =
      ref.attention(Tensor::from_floats(qs, q), Tensor::from_floats(ks, k), Tensor::from_floats(ks, v), s.heads, scale,
                    s.causal)
          .to_floats();
  const double pairs = !s.causal ? (double)s.lq * s.lk
                       : s.lq <= s.lk ? (double)s.lq * (s.lq + 1) / 2
                                      : (double)s.lk * (s.lk + 1) / 2 + (double)(s.lq - s.lk) * s.lk;
  const double flops = 4.0 * s.n * s.heads * pairs * s.d;
  const bool pass = kbench::report(s.name, ver.name, ver.dt, out, expect, optest::tol::kAttention, ms, flops,
                                   ver.rate, peak);
  for (kbench::DeviceArray* a : {&dq, &dk, &dv, &dout}) kbench::release(*a);
  return pass;
}

}  // namespace

int main(int argc, char** argv) {
  const kbench::Options opt = kbench::parse(argc, argv, "flash attention (kernels::attention): mma, fma, fma_f16");
  const std::vector<Shape4> full = {
      {"self_2x4096_h8_d40", 2, 4096, 4096, 8, 40, false},
      {"cross_2x4096x77_h8_d40", 2, 4096, 77, 8, 40, false},
      {"self_2x1024_h8_d80", 2, 1024, 1024, 8, 80, false},
      {"clip_causal_2x77_h12_d64", 2, 77, 77, 12, 64, true},
  };
  // The same kinds on fewer tokens and heads (the emulator is ~10^4 times slower than a GPU).
  const std::vector<Shape4> small = {
      {"self_1x320_h2_d40", 1, 320, 320, 2, 40, false},
      {"cross_1x320x77_h2_d40", 1, 320, 77, 2, 40, false},
      {"self_1x160_h1_d80", 1, 160, 160, 1, 80, false},
      {"clip_causal_1x77_h2_d64", 1, 77, 77, 2, 64, true},
  };
  const Version versions[] = {{"mma", DType::F16, 0, kbench::Rate::kTflopsF16},
                              {"fma", DType::F32, 0, kbench::Rate::kTflopsF32},
                              {"fma_f16", DType::F16, 1, kbench::Rate::kTflopsF32}};
  bool ok = true;
  try {
    const kbench::Peak peak = kbench::device_peak();
    kbench::print_device(peak);
    for (const Shape4& s : opt.small ? small : full)
      for (const Version& v : versions) ok = run(s, v, opt, peak) && ok;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
  std::printf("bench_attention: %s\n", ok ? "all PASS" : "FAIL");
  return ok ? 0 : 1;
}
