// The emulator's own tests: each part of the execution model against a plain host loop, and each
// fault it must catch. The kernels are in simt_test_kernels.cu.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/check.h"
#include "simt_runtime.h"
#include "simt_test_kernels.h"

namespace {

// A device array with host copies in and out.
template <class T>
struct Dev {
  T* p = nullptr;
  size_t n;
  explicit Dev(size_t n_) : n(n_) { SDGEN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T))); }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) {
    SDGEN_CUDA_CHECK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~Dev() { cudaFree(p); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    SDGEN_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

std::vector<float> randn(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Expects a simt::Fault whose message contains every one of `parts`.
template <class F>
void expect_fault(F f, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no fault raised";
  } catch (const simt::Fault& e) {
    std::printf("  fault: %s\n", e.what());  // shows newcomers what a report looks like
    for (auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Simt, SharedMemoryReductionWithBarriers) {
  const int blocks = 7;
  auto x = randn(blocks * 256, 1);
  Dev<float> dx(x), dout(blocks);
  simt_test::block_reduce(dx.p, dout.p, blocks);
  auto out = dout.host();
  for (int b = 0; b < blocks; ++b) {
    double ref = 0;
    for (int i = 0; i < 256; ++i) ref += x[b * 256 + i];
    EXPECT_NEAR(out[b], ref, 1e-4) << "block " << b;
  }
}

TEST(Simt, ShuffleReduction) {
  const int n = 1000;  // not a multiple of the block: the tail lanes contribute zeros
  auto x = randn(n, 2);
  Dev<float> dx(x), dout(std::vector<float>{0.f});
  simt_test::shuffle_reduce(dx.p, dout.p, n);
  double ref = 0;
  for (float v : x) ref += v;
  EXPECT_NEAR(dout.host()[0], ref, 1e-3);
}

// Shuffles with a width below 32, by the PTX ISA's shfl.sync rules as CUDA's intrinsics set them
// up (c = ((32 - width) << 8) | clamp, clamp 31 except for up): the source lane j is valid when
// j <= maxLane = segment start + width - 1 (xor, down, idx) or j >= segment start (up); otherwise
// a lane keeps its own value. So xor with bits above the width reads a lane of a lower segment.
TEST(Simt, ShuffleWidthFollowsPtx) {
  Dev<int> dout(4 * 4 * 32);
  simt_test::shuffle_width_sources(dout.p);
  const auto got = dout.host();
  const int args[4] = {1, 3, 8, 17}, w = 8;
  for (int m = 0; m < 4; ++m)
    for (int lane = 0; lane < 32; ++lane) {
      const int seg = lane & ~(w - 1), max_lane = seg + w - 1, b = args[m];
      const int x = lane ^ b, up = lane - b, down = lane + b, idx = seg | (b & (w - 1));
      EXPECT_EQ(got[(0 * 4 + m) * 32 + lane], x <= max_lane ? x : lane) << "xor " << b << " lane " << lane;
      EXPECT_EQ(got[(1 * 4 + m) * 32 + lane], up >= seg ? up : lane) << "up " << b << " lane " << lane;
      EXPECT_EQ(got[(2 * 4 + m) * 32 + lane], down <= max_lane ? down : lane) << "down " << b << " lane " << lane;
      EXPECT_EQ(got[(3 * 4 + m) * 32 + lane], idx) << "idx " << b << " lane " << lane;
    }
  EXPECT_EQ(got[(0 * 4 + 2) * 32 + 9], 1) << "xor 8 at width 8: lane 9 reads lane 1 of the segment below";
}

TEST(Simt, ShuffleUpScanAndVotes) {
  const int warps = 3;
  auto x = randn(warps * 32, 3);
  for (int i = 0; i < 32; ++i) x[64 + i] = std::fabs(x[64 + i]) + 0.1f;  // warp 2: all positive
  Dev<float> dx(x), dscan(x.size());
  Dev<unsigned> dballot(warps);
  Dev<int> dany(warps), dall(warps);
  simt_test::warp_scan_votes(dx.p, dscan.p, dballot.p, dany.p, dall.p, warps);
  auto scan = dscan.host();
  auto ballot = dballot.host();
  auto any = dany.host(), all = dall.host();
  for (int w = 0; w < warps; ++w) {
    double run = 0;
    unsigned b = 0;
    for (int l = 0; l < 32; ++l) {
      run += x[w * 32 + l];
      EXPECT_NEAR(scan[w * 32 + l], run, 1e-4);
      if (x[w * 32 + l] > 0) b |= 1u << l;
    }
    EXPECT_EQ(ballot[w], b);
    EXPECT_EQ(any[w], b != 0 ? 1 : 0);
    EXPECT_EQ(all[w], b == 0xffffffffu ? 1 : 0);
  }
}

TEST(Simt, TiledGemm) {
  const int M = 37, N = 45, K = 29;  // no dimension a multiple of the 16x16 tile
  auto a = randn(M * K, 4), b = randn(K * N, 5);
  Dev<float> da(a), db(b), dc(M * N);
  simt_test::tiled_gemm(da.p, db.p, dc.p, M, N, K);
  auto c = dc.host();
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += (double)a[i * K + k] * b[k * N + j];
      ASSERT_NEAR(c[i * N + j], ref, 1e-4) << i << "," << j;
    }
}

std::vector<__half> to_half(const std::vector<float>& v) {
  std::vector<__half> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = __float2half_rn(v[i]);
  return h;
}

// Sets the emulated architecture for a scope.
struct EmulatedArch {
  int saved = simt::emulated_arch();
  explicit EmulatedArch(int sm) { simt::set_emulated_arch(sm); }
  ~EmulatedArch() { simt::set_emulated_arch(saved); }
};

// The mma wrapper's host branch under each architecture's composition: one m16n8k16 (sm_80 on),
// or sm_75's two m16n8k8, each emulated by its own instruction's fragment layout.
class SimtTensorCore : public ::testing::TestWithParam<int> {};

TEST_P(SimtTensorCore, GemmFollowsPtxFragmentLayout) {
  EmulatedArch arch(GetParam());
  const int M = 32, N = 40, K = 48;
  auto ah = to_half(randn(M * K, 6)), wh = to_half(randn(N * K, 7));
  Dev<__half> da(ah), dw(wh);
  Dev<float> dc(M * N);
  simt_test::mma_gemm(da.p, dw.p, dc.p, M, N, K);
  auto c = dc.host();
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double ref = 0;  // the fp16-rounded inputs, multiplied exactly
      for (int k = 0; k < K; ++k)
        ref += (double)__half2float(ah[i * K + k]) * __half2float(wh[j * K + k]);
      ASSERT_NEAR(c[i * N + j], ref, 1e-3) << i << "," << j;
    }
}

INSTANTIATE_TEST_SUITE_P(Arch, SimtTensorCore, ::testing::Values(75, 80),
                         [](const ::testing::TestParamInfo<int>& p) {
                           return "sm" + std::to_string(p.param);
                         });

TEST(Simt, MmaM16n8k8FollowsPtxFragmentLayout) {
  auto ah = to_half(randn(16 * 8, 9)), wh = to_half(randn(8 * 8, 10));
  auto c0 = randn(16 * 8, 11);
  Dev<__half> da(ah), dw(wh);
  Dev<float> dc(c0), dd(16 * 8);
  simt_test::mma_k8(da.p, dw.p, dc.p, dd.p);
  auto d = dd.host();
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double ref = c0[i * 8 + j];
      for (int k = 0; k < 8; ++k)
        ref += (double)__half2float(ah[i * 8 + k]) * __half2float(wh[j * 8 + k]);
      ASSERT_NEAR(d[i * 8 + j], ref, 1e-4) << i << "," << j;
    }
}

// The emulated m16n8k8 places each register by its own layout, so a composition of m16n8k16 from
// two of them that splits the fragments wrongly gives a wrong product, as it would on sm_75.
TEST(Simt, WrongSm75FragmentSplitIsCaught) {
  auto ah = to_half(randn(16 * 16, 12)), wh = to_half(randn(8 * 16, 13));
  std::vector<double> want(16 * 8, 0.0);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 16; ++k)
        want[i * 8 + j] += (double)__half2float(ah[i * 16 + k]) * __half2float(wh[j * 16 + k]);
  Dev<__half> da(ah), dw(wh);
  Dev<float> dd(16 * 8);
  simt_test::mma_split(da.p, dw.p, dd.p, false);
  auto d = dd.host();
  for (int i = 0; i < 16 * 8; ++i) ASSERT_NEAR(d[i], want[i], 1e-3) << i;
  simt_test::mma_split(da.p, dw.p, dd.p, true);
  d = dd.host();
  int wrong = 0;
  for (int i = 0; i < 16 * 8; ++i) wrong += std::fabs(d[i] - want[i]) > 1e-3;
  EXPECT_GT(wrong, 100) << "of 128 elements";
}

// Not a fault the emulator can name, but one it must not hide: without the barrier, threads read
// neighbours that have not written yet in one of the two thread orders the blocks alternate.
TEST(Simt, MissingBarrierGivesWrongResults) {
  const int blocks = 2;
  auto x = randn(blocks * 64, 8);
  std::vector<float> want(x.size());
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < 64; ++t)
      want[b * 64 + t] = x[b * 64 + (t + 1) % 64] - x[b * 64 + (t + 63) % 64];
  Dev<float> dx(x), dy(x.size());
  for (bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "dynamic shared memory" : "static __shared__");
    simt_test::neighbour_exchange(dx.p, dy.p, blocks, true, dynamic);
    EXPECT_EQ(dy.host(), want);
    simt_test::neighbour_exchange(dx.p, dy.p, blocks, false, dynamic);
    auto y = dy.host();
    for (int b = 0; b < blocks; ++b) {
      bool block_ok = true;
      for (int t = 0; t < 64; ++t) block_ok = block_ok && y[b * 64 + t] == want[b * 64 + t];
      EXPECT_FALSE(block_ok) << "block " << b << " hid the missing barrier";
    }
  }
}

// Every block gets the same input, so what the previous block (or launch) left in shared memory
// is exactly what a reader expects: only the poison refilled before each block shows the race.
TEST(Simt, MissingBarrierIsNotHiddenByThePreviousBlock) {
  const int blocks = 3;
  auto row = randn(64, 14);
  std::vector<float> x;
  for (int b = 0; b < blocks; ++b) x.insert(x.end(), row.begin(), row.end());
  Dev<float> dx(x), dy(x.size());
  for (bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "dynamic shared memory" : "static __shared__");
    simt_test::neighbour_exchange(dx.p, dy.p, blocks, true, dynamic);
    auto y = dy.host();
    simt_test::neighbour_exchange(dx.p, dy.p, blocks, false, dynamic);
    auto racy = dy.host();
    for (int b = 0; b < blocks; ++b) {
      int poisoned = 0;
      for (int t = 0; t < 64; ++t) poisoned += std::isnan(racy[b * 64 + t]);
      // Forward order: 63 threads read a later neighbour that has not written; reverse: 63 an
      // earlier one. Either way one thread reads two written neighbours.
      EXPECT_EQ(poisoned, 63) << "block " << b;
      for (int t = 0; t < 64; ++t) {
        if (!std::isnan(racy[b * 64 + t])) {
          EXPECT_EQ(racy[b * 64 + t], y[b * 64 + t]) << "block " << b << " thread " << t;
        }
      }
    }
  }
}

TEST(Simt, StaticSharedIsPoisonedBeforeEveryBlock) {
  const int blocks = 3;
  Dev<float> dy(blocks * 64);
  for (int writer : {0, 1}) {
    SCOPED_TRACE("writer block " + std::to_string(writer));
    simt_test::static_shared_reread(dy.p, blocks, writer);
    auto y = dy.host();
    for (int b = 0; b < blocks; ++b)
      for (int t = 0; t < 64; ++t) {
        if (b == writer) {
          ASSERT_EQ(y[b * 64 + t], (float)t) << "block " << b << " thread " << t;
        } else {  // not the writer's values from this launch or the previous one
          ASSERT_TRUE(std::isnan(y[b * 64 + t])) << "block " << b << " thread " << t;
        }
      }
  }
}

TEST(SimtFault, BarrierReachedByPartOfTheBlock) {
  expect_fault(simt_test::fault_partial_barrier,
               {"partial_barrier_kernel", "block (0,0,0)", "reached by only 200 of 256",
                "exited without reaching it"});
}

TEST(SimtFault, WarpMaskNamesExitedLanes) {
  expect_fault(simt_test::fault_warp_exited_lanes,
               {"warp_exited_kernel", "block (0,0,0)", "thread (", "__shfl_xor_sync",
                "0xffffffff", "exited"});
}

TEST(SimtFault, DynamicSharedOutOfBounds) {
  EXPECT_NO_THROW(simt_test::fault_shared_oob(63));
  expect_fault([] { simt_test::fault_shared_oob(64); },
               {"shared_oob_kernel", "thread (5,0,0)", "index 64", "64 elements"});
}

TEST(SimtFault, LaunchBeyondSm75Limits) {
  EXPECT_NO_THROW(simt_test::fault_launch(1024, 48 * 1024));
  expect_fault([] { simt_test::fault_launch(2048, 0); },
               {"trivial_kernel", "2048 threads", "sm_75"});
  expect_fault([] { simt_test::fault_launch(128, 48 * 1024 + 16); },
               {"trivial_kernel", "dynamic shared memory", "cudaFuncSetAttribute"});
}

TEST(SimtFault, SharedOptInUpTo64KiB) {
  EXPECT_NO_THROW(simt_test::opt_in_shared(64 * 1024));
  EXPECT_THROW(simt_test::opt_in_shared(96 * 1024), sdgen::Error);  // cudaFuncSetAttribute refuses
}

TEST(SimtFault, DivergentBarrier) {
  expect_fault(simt_test::fault_divergent_barrier, {"divergent_barrier_kernel", "divergent"});
}

TEST(SimtRuntime, EmulatedArchStartsAtSm75) {
  EmulatedArch keep(simt::emulated_arch());
  EXPECT_THROW(simt::set_emulated_arch(70), simt::Fault);
  EXPECT_NO_THROW(simt::set_emulated_arch(75));
  EXPECT_EQ(simt::emulated_arch(), 75);
}

TEST(SimtRuntime, CopiesCheckTheirKind) {
  Dev<float> d(4);
  std::vector<float> h(4, 1.f);
  EXPECT_EQ(cudaMemcpy(d.p, h.data(), 16, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(h.data(), d.p, 16, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaDeviceProp p;
  ASSERT_EQ(cudaGetDeviceProperties(&p, 0), cudaSuccess);
  EXPECT_EQ(p.major * 10 + p.minor, 75);
}

}  // namespace
