// The meta device (src/backend/meta_backend.cpp) that the FLOP count and the memory estimate run the
// model code on (src/pipeline/dry_run.h): each op's output shape and FLOPs against hand-derived
// figures, the byte tally against the tensors alive, the op layer's checks still applied, and a
// dry pass of full-size SD v1.5 at the largest request sd-gen takes costing no real memory or time.
// The passes' totals are held by tests/test_flops.cpp (hand-derived per block) and
// tests/test_memory_estimate.cpp (the reference tensor lists, measured peaks).
#include <gtest/gtest.h>

#include <chrono>

#include "core/device_memory.h"
#include "pipeline/dry_run.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"

namespace {

using namespace sdgen;

Tensor meta(const Shape& shape, DType dtype = DType::F32) { return Tensor::empty(shape, dtype, Device::Meta); }

TEST(MetaDevice, OpsMakeTheirShapesAndCountTheDenseWork) {
  MetaTally& t = meta_tally();
  const double start = t.flops;
  // 3×3 "same" conv, 3 → 5 channels over 2 images of 8×8: 2·(2·8·8·5)·(3·9) = 34,560.
  const Tensor y = ops::conv2d(meta({2, 8, 8, 3}), meta({5, 3, 3, 3}), meta({5}), 1, 1);
  EXPECT_EQ(y.shape(), (Shape{2, 8, 8, 5}));
  EXPECT_DOUBLE_EQ(t.flops - start, 34560);
  // Stride 2, no padding: (8 - 3) / 2 + 1 = 3 per side; 2·(2·3·3·5)·27 = 4,860.
  EXPECT_EQ(ops::conv2d(meta({2, 8, 8, 3}), meta({5, 3, 3, 3}), Tensor(), 2, 0).shape(), (Shape{2, 3, 3, 5}));
  EXPECT_DOUBLE_EQ(t.flops - start, 34560 + 4860);
  // A linear layer over [2, 4] rows of 6 → 7: 2·8·6·7 = 672.
  EXPECT_EQ(ops::linear(meta({2, 4, 6}), meta({7, 6})).shape(), (Shape{2, 4, 7}));
  EXPECT_DOUBLE_EQ(t.flops - start, 34560 + 4860 + 672);
  // Attention, 10 queries over 7 keys of 16 channels, 2 sequences: 4·2·10·7·16 = 8,960.
  EXPECT_EQ(ops::attention(meta({2, 10, 16}), meta({2, 7, 16}), meta({2, 7, 16}), 4, 0.5f, false).shape(),
            (Shape{2, 10, 16}));
  const double dense = 34560 + 4860 + 672 + 8960;
  EXPECT_DOUBLE_EQ(t.flops - start, dense);
  // The rest change shapes (or not) and add no FLOPs.
  EXPECT_EQ(ops::geglu(meta({3, 8})).shape(), (Shape{3, 4}));
  EXPECT_EQ(ops::upsample_nearest2x(meta({1, 4, 5, 2})).shape(), (Shape{1, 8, 10, 2}));
  EXPECT_EQ(ops::concat_channels(meta({1, 2, 2, 3}), meta({1, 2, 2, 4})).shape(), (Shape{1, 2, 2, 7}));
  EXPECT_EQ(ops::embedding({1, 2, 3, 4, 5, 6}, 2, meta({10, 8}), Device::Meta).shape(), (Shape{2, 3, 8}));
  EXPECT_EQ(ops::timestep_embedding({1.0f, 2.0f, 3.0f}, 6, DType::F16, Device::Meta).shape(), (Shape{3, 6}));
  EXPECT_EQ(ops::cast(meta({2, 3}), DType::F16).dtype(), DType::F16);
  EXPECT_EQ(ops::group_norm(meta({1, 2, 2, 4}), meta({4}), meta({4}), 2, 1e-5f, true).shape(), (Shape{1, 2, 2, 4}));
  EXPECT_DOUBLE_EQ(t.flops - start, dense);
}

TEST(MetaDevice, TalliesTheBytesAliveAndTheirPeak) {
  MetaTally& t = meta_tally();
  const uint64_t live = t.live;
  t.peak = live;
  {
    const Tensor a = meta({1000});              // 4,000 bytes
    const Tensor b = meta({10, 50}, DType::F16);  // 1,000 bytes
    EXPECT_EQ(t.live - live, 5000u);
    EXPECT_EQ(a.data(), nullptr);
    const Tensor view = a.reshape({10, 100});  // a view allocates nothing
    EXPECT_EQ(t.live - live, 5000u);
  }
  EXPECT_EQ(t.live, live);
  { const Tensor c = meta({2, 500}); }
  EXPECT_EQ(t.peak - live, 5000u);  // the first two together, more than the third alone
  EXPECT_EQ(t.live, live);
}

TEST(MetaDevice, TheOpLayerStillChecksShapes) {
  EXPECT_THROW(ops::linear(meta({2, 6}), meta({7, 5})), Error);
  EXPECT_THROW(ops::add(meta({2, 6}), meta({2, 7})), Error);
  EXPECT_THROW(ops::add(meta({2, 6}), meta({2, 6}, DType::F16)), Error);
  EXPECT_THROW(meta({2}).to_floats(), Error);  // no values to read
}

// The largest request sd-gen takes (2048², batch 64 with guidance: 128 latents of 256×256) runs
// dry in milliseconds, though its activations alone would take about 190 GiB in fp32 for real.
TEST(DryRun, FullSizeUNetAtTheLargestRequestCostsNoMemoryOrTime) {
  const ModelConfig sd;
  const auto start = std::chrono::steady_clock::now();
  const PassCost p = unet_pass(sd.unet, 128, 256, 256, 77);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0);
  EXPECT_GT(p.live_bytes, uint64_t(150) << 30);
  EXPECT_EQ(meta_tally().live, 0u) << "the pass's tensors, weights included, are all gone";
}

// A pass in fp16 holds half the bytes of the same pass in fp32, and the same parameters and work.
TEST(DryRun, Fp16HalvesTheBytesNotTheWork) {
  const ModelConfig sd;
  const PassCost a = vae_decoder_pass(sd.vae, 1, 256, 256, DType::F32);
  const PassCost b = vae_decoder_pass(sd.vae, 1, 256, 256, DType::F16);
  EXPECT_EQ(a.parameters, b.parameters);
  EXPECT_DOUBLE_EQ(a.flops, b.flops);
  EXPECT_EQ(a.live_bytes, 2 * b.live_bytes);
}

}  // namespace
