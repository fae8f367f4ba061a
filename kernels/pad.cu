// Zero padding of an NHWC image (ops::pad): y [n, top+h+bottom, left+w+right, c] is x shifted by
// (top, left), zero elsewhere. The VAE encoder's downsampler pads (0, 1, 0, 1) before its stride-2
// convolution. The CPU reference is src/backend/cpu/pad.cpp; the result is bit exact (a copy).
// Layout: NHWC contiguous, x and y. One pass over the output: every output row (image, oy) along
// the grid's y, along x a Walk over (ox, channel vector); a thread loads the input vector it lands
// on, or stores zeros. Versions: v1 scalar (N = 1) when c is not a multiple of the vector width or
// a pointer is not 16-byte aligned (a slice); v2 one 16-byte access per step (float4 / 8 halves).
// Index arithmetic is 32-bit (the launcher checks the output's size).
// Test: simt_tests --gtest_filter='CudaEmu/*pad*' (the op table against the CPU backend, fp32 and
// fp16, aligned, odd-channel and unaligned rows). Benchmark: op_perf_gpu --filter pad (GB/s; the
// VAE encoder's shapes 512²×128, 256²×256, 128²×512 are in tests/op_work.h's perf rows).
#include <climits>
#include <string>

#include "kernels.h"

#include "common/launch.cuh"
#include "common/vec.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::kVec;
using kern::load;
using kern::Pack;
using kern::store;
using kern::Walk;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1024;

struct PadShape {
  unsigned n, h, w, c, ho, wo, top, left;
};

template <class T, int N>
__global__ void pad_kernel(const T* x, T* y, PadShape s) {
  const Walk start(s.c / N);
  for (unsigned row = blockIdx.y; row < s.n * s.ho; row += gridDim.y) {
    const unsigned b = row / s.ho, oy = row - b * s.ho;
    const unsigned iy = oy - s.top;  // wraps to a large value above the image: one compare
    T* yr = y + row * s.wo * s.c;
    for (Walk p = start; p.r < s.wo; p.next()) {
      const unsigned ox = p.r, ch = p.j * N, ix = ox - s.left;
      Pack<T, N> v;
      if (iy < s.h && ix < s.w) {
        v = load<N>(x + ((b * s.h + iy) * s.w + ix) * s.c + ch);
      } else {
        SDGEN_UNROLL for (int k = 0; k < N; ++k) v.v[k] = kern::from_float<T>(0.0f);
      }
      store<N>(yr + ox * s.c + ch, v);
    }
  }
}

dim3 grid_for(int64_t per_row, int64_t rows) {
  int64_t gx = (per_row + kThreads - 1) / kThreads;
  gx = gx < 1 ? 1 : (gx > kMaxBlocks ? kMaxBlocks : gx);
  int64_t gy = kMaxBlocks / gx;
  gy = gy > rows ? rows : gy;
  gy = gy > 65535 ? 65535 : gy;
  return dim3((unsigned)gx, (unsigned)(gy > 0 ? gy : 1));
}

template <class T>
void launch(const void* xv, void* yv, const PadShape& s, cudaStream_t stream) {
  constexpr int V = kVec<T>;
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  const bool vec = s.c % V == 0 && kern::aligned16(x) && kern::aligned16(y);
  const int64_t per_row = (int64_t)s.wo * s.c / (vec ? V : 1);
  const dim3 g = grid_for(per_row, (int64_t)s.n * s.ho);
  if (vec)
    SDGEN_LAUNCH((pad_kernel<T, V>), g, dim3(kThreads), 0, stream, x, y, s);
  else
    SDGEN_LAUNCH((pad_kernel<T, 1>), g, dim3(kThreads), 0, stream, x, y, s);
}

}  // namespace

void pad(const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c, int top, int bottom, int left,
         int right, DType dt, cudaStream_t s) {
  const int64_t ho = h + top + bottom, wo = w + left + right, total = n * ho * wo * c;
  if (total == 0) return;
  SDGEN_CHECK(total <= INT_MAX, "pad: " + std::to_string(total) +
                                    " output elements exceed the kernel's 32-bit indexing (at most 2^31 - 1)");
  cuda::note_traffic((double)(n * h * w * c + total) * dtype_size(dt));
  const PadShape sh{(unsigned)n, (unsigned)h, (unsigned)w, (unsigned)c, (unsigned)ho, (unsigned)wo, (unsigned)top,
                    (unsigned)left};
  if (dt == DType::F32)
    launch<float>(x, y, sh, s);
  else
    launch<__half>(x, y, sh, s);
}

}  // namespace kernels
}  // namespace sdgen
