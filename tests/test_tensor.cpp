// Tensor basics and the fp16 conversions every fp16 path relies on, against hand-derived IEEE 754
// binary16 encodings; the guard bytes that the op table uses to catch writes past an output.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "sdgen/half.h"
#include "sdgen/tensor.h"
#include "core/device_memory.h"

using namespace sdgen;

TEST(Half, EncodesHandDerivedValues) {
  EXPECT_EQ(float_to_half_bits(1.0f), 0x3C00);
  EXPECT_EQ(float_to_half_bits(-2.0f), 0xC000);
  EXPECT_EQ(float_to_half_bits(0.5f), 0x3800);
  EXPECT_EQ(float_to_half_bits(65504.0f), 0x7BFF);               // largest finite
  EXPECT_EQ(float_to_half_bits(65519.99f), 0x7BFF);              // below the rounding midpoint
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7C00);               // midpoint rounds to inf
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: 0
  EXPECT_EQ(float_to_half_bits(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp: tie to even: 2
  EXPECT_EQ(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie to even (down)
  EXPECT_EQ(float_to_half_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie to even (up)
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(float_to_half_bits(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half_bits(std::nanf("")) & 0x7C00, 0x7C00);
  EXPECT_NE(float_to_half_bits(std::nanf("")) & 0x03FF, 0);
}

TEST(Half, DecodesHandDerivedValues) {
  EXPECT_EQ(half_bits_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_bits_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_bits_to_float(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(half_bits_to_float(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(half_bits_to_float(0xFC00)));
  EXPECT_TRUE(std::isnan(half_bits_to_float(0x7E00)));
  EXPECT_EQ(bf16_bits_to_float(0x3F80), 1.0f);
  // Every finite half survives a round trip.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(float_to_half_bits(half_bits_to_float((uint16_t)h)), h) << std::hex << h;
  }
}

TEST(Tensor, GuardBytesCatchWritesPastTheEnd) {
  Tensor t = Tensor::empty({3, 5});
  EXPECT_TRUE(t.guard_intact());
  t.f32()[14] = 1.0f;  // the last element: fine
  EXPECT_TRUE(t.guard_intact());
  reinterpret_cast<unsigned char*>(t.data())[t.nbytes()] = 0;  // one byte past the end
  EXPECT_FALSE(t.guard_intact());
}

TEST(Tensor, ReshapeAndSliceShareStorage) {
  Tensor t = Tensor::from_floats({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor r = t.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 2}));
  Tensor s = t.slice0(1, 2);
  EXPECT_EQ(s.shape(), (Shape{1, 3}));
  EXPECT_EQ(s.f32()[0], 3.0f);
  s.f32()[0] = 9.0f;
  EXPECT_EQ(t.f32()[3], 9.0f);
  EXPECT_THROW(t.reshape({4, 2}), std::exception);
}

// Host blocks of 1 MiB and more are kept when freed and reused (src/core/device_memory.cpp): the
// same size (or up to 1/16 larger) gets the freed block back; kept and live bytes together never
// pass the most ever live, so a request that finds no block releases kept ones first. Sizes: a
// tensor of n floats takes 4n bytes + 64 guard bytes.
TEST(HostBlocks, FreedBlocksAreReusedUnderTheHighWaterMark) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "blocks are not kept under AddressSanitizer";
#endif
  using sdgen::host_block_stats;
  const int64_t n = int64_t(1) << 20;  // 4 MiB
  const size_t b = 4 * (size_t)n + 64;
  sdgen::release_kept_host_blocks();
  const size_t live0 = host_block_stats().live;
  EXPECT_EQ(host_block_stats().kept, 0u);
  EXPECT_EQ(host_block_stats().high, live0);
  const void* first = nullptr;
  {
    Tensor a = Tensor::empty({n});
    first = a.data();
    EXPECT_EQ(host_block_stats().live, live0 + b);
  }
  EXPECT_EQ(host_block_stats().kept, b);
  EXPECT_EQ(host_block_stats().high, live0 + b);
  {
    Tensor same = Tensor::empty({n});  // the freed block again
    EXPECT_EQ(same.data(), first);
    EXPECT_EQ(host_block_stats().kept, 0u);
  }
  {
    // 1/32 smaller: within a sixteenth, the block is reused (and counted at its own size).
    Tensor smaller = Tensor::empty({n - n / 32});
    EXPECT_EQ(smaller.data(), first);
    EXPECT_EQ(host_block_stats().live, live0 + b);
  }
  {
    // Half the size: too small for the kept block; live + kept + new = live0 + 1.5b passes the
    // mark (live0 + b): the kept block is released first.
    Tensor half = Tensor::empty({n / 2});
    EXPECT_EQ(host_block_stats().kept, 0u);
    EXPECT_EQ(host_block_stats().high, live0 + b);
  }
  EXPECT_EQ(host_block_stats().kept, 2 * (size_t)n + 64);
  {
    // Two halves live at once: the first takes the kept half block, the second is new; live
    // rises to live0 + 2 · (2n + 64) = live0 + b + 64, a new mark.
    Tensor h1 = Tensor::empty({n / 2}), h2 = Tensor::empty({n / 2});
    EXPECT_EQ(host_block_stats().kept, 0u);
    EXPECT_EQ(host_block_stats().live, live0 + 2 * (2 * (size_t)n + 64));
  }
  // Both halves kept; a whole-size request finds no block of its size, and live0 + kept + b passes
  // the mark, so kept halves are released until it fits: both (one half kept would still pass it).
  const size_t mark = host_block_stats().high;
  EXPECT_EQ(mark, live0 + 2 * (2 * (size_t)n + 64));
  {
    Tensor whole = Tensor::empty({n});
    EXPECT_EQ(host_block_stats().kept, 0u);
  }
  sdgen::release_kept_host_blocks();
  EXPECT_EQ(host_block_stats().kept, 0u);
  EXPECT_EQ(host_block_stats().high, live0);
}
