// The analytic FLOP count (src/pipeline/flops.h) of SD v1.5 against figures derived by hand here,
// block type by block type, from the architecture (diffusers' SD v1.5 configs), within 2%.
// Units: 1 GF = 1e9 FLOP. A convolution is 2·H·W·Cout·Cin·k², a linear layer 2·rows·in·out, the
// two attention products 4·Lq·Lk·C (all heads together). Norms, activations, softmax: not counted.
#include <gtest/gtest.h>

#include "core/peak_flops.h"
#include "pipeline/flops.h"

namespace {

using sdgen::ModelConfig;

// CLIP ViT-L/14 text tower, one 77-token prompt, d = 768, 12 layers, MLP 3072:
//   q, k, v, out projections  4 · 2·77·768·768   = 0.3633 GF
//   attention products        4·77·77·768         = 0.0182 GF
//   MLP fc1 + fc2             2 · 2·77·768·3072   = 0.7267 GF
//   per layer 1.1082 GF; × 12 layers = 13.30 GF per prompt (≈ 13 GFLOP)
constexpr double kClipPerPrompt = 13.30e9;

// UNet, one evaluation of one 64×64 latent with a 77×768 context; the four levels have HW = 4096,
// 1024, 256, 64 tokens and C = 320, 640, 1280, 1280.
// ResnetBlock2D(in→out) = conv3×3(in→out) + conv3×3(out→out) + a 1×1 shortcut when in ≠ out,
// plus a 1280→out time projection (2.6 MF, included in the sums):
//   down: 64² 320→320 ×2: 2 · 15.10; 32² 320→640: 11.75, 640→640: 15.10;
//         16² 640→1280: 11.75, 1280→1280: 15.10; 8² 1280→1280 ×2: 2 · 3.78       =  91.45 GF
//   mid:  8² 1280→1280 ×2: 2 · 3.78                                                =   7.56 GF
//   up (input = path + skip): 8² 2560→1280 ×3: 3 · 6.09; 16² 2560→1280 ×2: 2 · 24.33,
//         1920→1280: 20.14; 32² 1920→640: 32.72, 1280→640: 24.33, 960→640: 20.13;
//         64² 960→320: 32.72, 640→320 ×2: 2 · 24.33                                = 245.60 GF
// Transformer2DModel (one block): proj_in, q/k/v/out of self-attention, q/out of cross-attention,
// GEGLU C→8C and 4C→C, proj_out = 1+4+2+8+4+1 = 20 units of 2·HW·C²; cross-attention k and v over
// the context 2 · 2·77·768·C; products 4·HW²·C (self) and 4·HW·77·C (cross):
//   64², C=320:  16.78 + 0.08 + 21.47 + 0.40 = 38.73 GF, ×5 (2 down, 3 up)           = 193.66 GF
//   32², C=640:  16.78 + 0.15 +  2.68 + 0.20 = 19.81 GF, ×5                          =  99.07 GF
//   16², C=1280: 16.78 + 0.30 +  0.34 + 0.10 = 17.52 GF, ×5                          =  87.58 GF
//   8²,  C=1280 (mid): 4.19 + 0.30 + 0.02 + 0.03                                     =   4.54 GF
// Down/upsampling 3×3 convs at their output size: down 32²·320², 16²·640², 8²·1280²: 3 · 1.89;
//   up 16²·1280²: 7.55, 32²·1280²: 30.20, 64²·640²: 30.20                            =  73.61 GF
// conv_in 4→320 and conv_out 320→4 at 64² (0.19), the time MLP (0.004)                =   0.19 GF
// Sum: 91.45 + 7.56 + 245.60 + 384.86 + 73.61 + 0.19 = 803.27 GF ≈ 0.80 TFLOP.
constexpr double kUNetPerLatent = 803.27e9;

// VAE decoder to 512×512 (latent 64², up levels with 512, 512, 256, 128 channels); a 3×3 conv
// 512→512 is 19.33 GF at 64², 77.31 GF at 128²; 256→256 is 77.31 GF at 256²; 128→128 the same
// at 512²:
//   conv_in 4→512 at 64²                                                         =   0.15 GF
//   mid: 2 resnets (4 convs) 77.31; attention q/k/v/out 4 · 2·4096·512² = 8.59;
//        products 4·4096²·512 = 34.36                                            = 120.26 GF
//   up 0 at 64²: 3 resnets (6 convs) 115.96; upsampling conv at 128² 77.31       = 193.27 GF
//   up 1 at 128²: 6 convs 463.86; upsampling conv at 256² 309.24                 = 773.10 GF
//   up 2 at 256²: 512→256 154.62 + 77.31 + 1×1 shortcut 17.18, 4 convs 309.24;
//        upsampling conv 256 at 512² 309.24                                      = 867.59 GF
//   up 3 at 512²: 256→128 154.62 + 77.31 + shortcut 17.18, 4 convs 309.24        = 558.35 GF
//   conv_out 128→3 at 512²                                                       =   1.81 GF
// Sum: 2514.5 GF ≈ 2.5 TFLOP per image.
constexpr double kVaePerImage = 2514.5e9;

TEST(Flops, ClipSd15PerPrompt) {
  const ModelConfig m;
  EXPECT_NEAR(sdgen::clip_flops(m.clip, 1), kClipPerPrompt, 0.02 * kClipPerPrompt);
}

TEST(Flops, UNetSd15Per64x64Latent) {
  const ModelConfig m;
  EXPECT_NEAR(sdgen::unet_flops(m.unet, 1, 64, 64, 77), kUNetPerLatent, 0.02 * kUNetPerLatent);
  EXPECT_NEAR(sdgen::unet_flops(m.unet, 1, 64, 64, 77), 0.80e12, 0.02 * 0.80e12);
}

TEST(Flops, VaeDecoderSd15Per512Image) {
  const ModelConfig m;
  EXPECT_NEAR(sdgen::vae_decoder_flops(m.vae, 1, 512, 512), kVaePerImage, 0.02 * kVaePerImage);
  EXPECT_NEAR(sdgen::vae_decoder_flops(m.vae, 1, 512, 512), 2.5e12, 0.02 * 2.5e12);
}

// The workload: batch 3 × 25 steps at 512² with guidance is CLIP on 2 prompts, the UNet on 6
// latents per step, the VAE on 3 images: 2·13.3 GF + 25·6·803.27 GF + 3·2514 GF ≈ 128.06 TFLOP.
TEST(Flops, WorkloadAddsTheStages) {
  const ModelConfig m;
  const sdgen::WorkloadFlops w = sdgen::workload_flops(m, 3, 512, 512, 25, 7.5f);
  EXPECT_EQ(w.text_sequences, 2);
  EXPECT_EQ(w.unet_batch, 6);
  EXPECT_DOUBLE_EQ(w.total, w.clip + 25 * w.unet_per_step + w.vae);
  const double hand = 2 * kClipPerPrompt + 25 * 6 * kUNetPerLatent + 3 * kVaePerImage;
  EXPECT_NEAR(w.total, hand, 0.02 * hand);
  // Without guidance: no unconditional half.
  const sdgen::WorkloadFlops g1 = sdgen::workload_flops(m, 3, 512, 512, 25, 1.0f);
  EXPECT_EQ(g1.unet_batch, 3);
  EXPECT_NEAR(g1.unet_per_step, w.unet_per_step / 2, 1.0);
}

}  // namespace

// Peak rates (src/core/peak_flops.h), the MFU denominators, by hand for a 2-CPU, 2 GHz machine:
// fp32 = CPUs · lanes · 2 (FMA) · 2 pipes · clock; AVX-512: 2·16·2·2·2e9 = 256 GFLOP/s, AVX2: 128.
// bf16: AMX-BF16 1024 FLOP per cycle and CPU = 2·1024·2e9 = 4096 GFLOP/s; AVX512-BF16 (vdpbf16ps:
// two products per fp32 lane) 2 · 256 = 512; neither: the fp32 rate.
namespace {
std::string cpuinfo_with(const std::string& flags) {
  return "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: " + flags + "\n";
}
}  // namespace

TEST(PeakFlops, CpuRatesPerPrecision) {
  using sdgen::DType;
  const sdgen::PeakFlops zen4 = sdgen::cpu_peak_flops_of(
      cpuinfo_with("fpu sse avx avx2 fma avx512f avx512_bf16"), 2, 2000, "test");
  EXPECT_DOUBLE_EQ(zen4.for_precision(DType::F32), 256e9);
  EXPECT_DOUBLE_EQ(zen4.for_precision(DType::F16), 256e9);
  EXPECT_DOUBLE_EQ(zen4.for_precision(DType::BF16), 512e9);
  const sdgen::PeakFlops spr = sdgen::cpu_peak_flops_of(
      cpuinfo_with("avx avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"), 2, 2000, "test");
  EXPECT_DOUBLE_EQ(spr.for_precision(DType::F32), 256e9);
  EXPECT_DOUBLE_EQ(spr.for_precision(DType::BF16), 4096e9);
  const sdgen::PeakFlops haswell = sdgen::cpu_peak_flops_of(cpuinfo_with("sse avx avx2 fma"), 2, 2000, "test");
  EXPECT_DOUBLE_EQ(haswell.for_precision(DType::F32), 128e9);
  EXPECT_DOUBLE_EQ(haswell.for_precision(DType::BF16), 128e9);
  // A flag that merely contains another's name does not count ("avx512_bf16x" is not avx512_bf16).
  const sdgen::PeakFlops other = sdgen::cpu_peak_flops_of(cpuinfo_with("avx2 fma avx512_bf16x"), 1, 1000, "test");
  EXPECT_DOUBLE_EQ(other.for_precision(DType::BF16), other.for_precision(DType::F32));
}

// GPUs: vendor datasheets (dense). H100 SXM: 989 TFLOP/s fp16 and bf16 tensor, 67 fp32; T4 (Turing)
// has no bf16 tensor cores: bf16 at its 8.1 TFLOP/s fp32 rate.
TEST(PeakFlops, GpuRatesPerPrecision) {
  using sdgen::DType;
  const auto h100 = sdgen::gpu_peak_flops("NVIDIA H100 80GB HBM3");
  ASSERT_TRUE(h100.has_value());
  EXPECT_DOUBLE_EQ(h100->for_precision(DType::F16), 989e12);
  EXPECT_DOUBLE_EQ(h100->for_precision(DType::BF16), 989e12);
  EXPECT_DOUBLE_EQ(h100->for_precision(DType::F32), 67e12);
  const auto t4 = sdgen::gpu_peak_flops("Tesla T4");
  ASSERT_TRUE(t4.has_value());
  EXPECT_DOUBLE_EQ(t4->for_precision(DType::F16), 65e12);
  EXPECT_DOUBLE_EQ(t4->for_precision(DType::BF16), 8.1e12);
}
