// Elementwise and layout kernels: SiLU, QuickGELU, GELU (erf), ReLU, tanh, scale, add, per-channel add (bias,
// the resnet's time embedding), GEGLU, nearest 2x upsampling, channel concatenation,
// fp32<->fp16<->bf16 cast, embedding gather. Each loads T, computes in fp32, stores T
// (T = float | __half | __nv_bfloat16),
// so results are bit-identical to the CPU backend (pointwise math: the same fp32 formulas).
// Layout: NHWC / [rows, channels], contiguous.
// Versions, one kernel template per op with the vector width N as a parameter:
//   v1 scalar (N = 1): one element per step; used when a pointer is not 16-byte aligned (a slice)
//      or the row length is not a multiple of the vector width (odd channel counts).
//   v2 vectorized (N = 16 / sizeof T: float4 for fp32, 8 halves for fp16; cast: 8 elements, so the
//      fp32 side is two 16-byte accesses): one 16-byte load/store per step. Flat ops (unary,
//      scale, add, cast) do the n % N tail element by element in the same launch; row ops
//      (geglu, add_channel, upsample, concat, embedding) walk rows × channel vectors (Walk in
//      common/vec.cuh) with no division per step. The launcher picks the version at run time.
// Index arithmetic is 32-bit (launchers check sizes with SDGEN_CHECK); grid-stride loops over at
// most 1024 blocks (a 132-SM GPU stays full and the emulator's fiber count stays bounded).
// Test: simt_tests --gtest_filter='CudaEmu/*' (the emulated op table against the CPU backend,
// fp32, fp16 and bf16, including odd-channel and unaligned-slice rows that take v1); the same table
// runs on a GPU build (cuda_ops_tests). Benchmark: the table's perf mode, build/benchmarks/op_perf_gpu
// --filter geglu,add_,silu,gelu (v2 on the aligned SD rows, v1 on the *_unaligned_* rows; GB/s).
#include <climits>
#include <string>

#include "kernels.h"

#include "common/launch.cuh"
#include "common/vec.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::kVec;
using kern::load;
using kern::Pack;
using kern::store;
using kern::to_float;
using kern::Walk;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1024;
unsigned blocks_for(int64_t work) {
  int64_t b = (work + kThreads - 1) / kThreads;
  return (unsigned)(b < kMaxBlocks ? (b > 0 ? b : 1) : kMaxBlocks);
}

// Kernels index with 32-bit unsigned arithmetic; every element offset must stay below 2^31.
void check_fits(int64_t elements, const char* op) {
  SDGEN_CHECK(elements >= 0 && elements <= INT_MAX,
              std::string(op) + ": " + std::to_string(elements) +
                  " elements exceed the kernels' 32-bit indexing (at most 2^31 - 1)");
}

template <class... P>
bool all_aligned(const P*... p) {
  return (kern::aligned16(p) && ...);
}

#define SDGEN_GRID_STRIDE(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

struct SiluF {
  __device__ float operator()(float v) const { return v * kern::sigmoidf_(v); }
};
struct QuickGeluF {
  __device__ float operator()(float v) const { return v * kern::sigmoidf_(1.702f * v); }
};
struct GeluF {
  __device__ float operator()(float v) const { return kern::gelu_erf(v); }
};
struct ReluF {  // torch.relu: NaN passes through
  __device__ float operator()(float v) const { return v > 0.0f ? v : (v != v ? v : 0.0f); }
};
struct TanhF {
  __device__ float operator()(float v) const { return tanhf(v); }
};
struct ScaleF {
  float s;
  __device__ float operator()(float v) const { return v * s; }
};

// ---- flat ops: N elements per step, then the n % N tail one by one --------------------------

template <class T, int N, class F>
__global__ void map_kernel(const T* x, T* y, unsigned n, F f) {
  const unsigned nv = n / N, done = nv * N;
  SDGEN_GRID_STRIDE(i, nv) {
    Pack<T, N> v = load<N>(x + i * N);
    SDGEN_UNROLL for (int k = 0; k < N; ++k) v.v[k] = from_float<T>(f(to_float(v.v[k])));
    store<N>(y + i * N, v);
  }
  SDGEN_GRID_STRIDE(i, n - done) y[done + i] = from_float<T>(f(to_float(x[done + i])));
}

template <class T, int N>
__global__ void add_kernel(const T* a, const T* b, T* y, unsigned n) {
  const unsigned nv = n / N, done = nv * N;
  SDGEN_GRID_STRIDE(i, nv) {
    Pack<T, N> u = load<N>(a + i * N);
    const Pack<T, N> v = load<N>(b + i * N);
    SDGEN_UNROLL for (int k = 0; k < N; ++k) u.v[k] = from_float<T>(to_float(u.v[k]) + to_float(v.v[k]));
    store<N>(y + i * N, u);
  }
  SDGEN_GRID_STRIDE(i, n - done) y[done + i] = from_float<T>(to_float(a[done + i]) + to_float(b[done + i]));
}

template <class Tin, class Tout, int N>
__global__ void cast_kernel(const Tin* x, Tout* y, unsigned n) {
  const unsigned nv = n / N, done = nv * N;
  SDGEN_GRID_STRIDE(i, nv) {
    const Pack<Tin, N> u = load<N>(x + i * N);
    Pack<Tout, N> v;
    SDGEN_UNROLL for (int k = 0; k < N; ++k) v.v[k] = from_float<Tout>(to_float(u.v[k]));
    store<N>(y + i * N, v);
  }
  SDGEN_GRID_STRIDE(i, n - done) y[done + i] = from_float<Tout>(to_float(x[done + i]));
}

// ---- row ops: rows × (channels / N) vectors ----------------------------------------------

template <class T, int N>
__global__ void geglu_kernel(const T* x, T* y, unsigned rows, unsigned c) {
  for (Walk w(c / N); w.r < rows; w.next()) {
    const T* xr = x + w.r * 2 * c + w.j * N;
    const Pack<T, N> v = load<N>(xr), g = load<N>(xr + c);
    Pack<T, N> o;
    SDGEN_UNROLL for (int k = 0; k < N; ++k)
      o.v[k] = from_float<T>(to_float(v.v[k]) * kern::gelu_erf(to_float(g.v[k])));
    store<N>(y + w.r * c + w.j * N, o);
  }
}

// Images along the grid's y, (spatial, channel vectors) along x. May run in place (y == x).
template <class T, int N>
__global__ void add_channel_kernel(const T* x, const T* b, T* y, unsigned batch, unsigned spatial,
                                   unsigned c) {
  const Walk start(c / N);
  for (unsigned img = blockIdx.y; img < batch; img += gridDim.y) {
    const T* xi = x + img * spatial * c;
    const T* bi = b + img * c;
    T* yi = y + img * spatial * c;
    for (Walk w = start; w.r < spatial; w.next()) {
      const unsigned i = w.r * c + w.j * N;
      Pack<T, N> u = load<N>(xi + i);
      const Pack<T, N> v = load<N>(bi + w.j * N);
      SDGEN_UNROLL for (int k = 0; k < N; ++k) u.v[k] = from_float<T>(to_float(u.v[k]) + to_float(v.v[k]));
      store<N>(yi + i, u);
    }
  }
}

// Output rows (image, oy) along the grid's y; along x one thread per output pixel-vector (ox, ch).
template <class T, int N>
__global__ void upsample_kernel(const T* x, T* y, unsigned n, unsigned h, unsigned w, unsigned c) {
  const unsigned oh = 2 * h, ow = 2 * w;
  const Walk start(c / N);
  for (unsigned row = blockIdx.y; row < n * oh; row += gridDim.y) {
    const unsigned b = row / oh, oy = row - b * oh;
    T* yr = y + row * ow * c;
    for (Walk p = start; p.r < ow; p.next()) {
      const unsigned ox = p.r, ch = p.j * N;
      store<N>(yr + ox * c + ch, load<N>(x + ((b * h + oy / 2) * w + ox / 2) * c + ch));
    }
  }
}

template <class T, int N>
__global__ void concat_kernel(const T* a, const T* b, T* y, unsigned rows, unsigned ca, unsigned cb) {
  const unsigned c = ca + cb, cav = ca / N;
  for (Walk w(c / N); w.r < rows; w.next()) {
    const unsigned j = w.j * N;
    const Pack<T, N> v = w.j < cav ? load<N>(a + w.r * ca + j) : load<N>(b + w.r * cb + (j - ca));
    store<N>(y + w.r * c + j, v);
  }
}

// The table offset is 64-bit (the launcher does not know the table's size): a multiply, no division.
template <class T, int N>
__global__ void embedding_kernel(const int* ids, const T* table, T* y, unsigned count, unsigned dim) {
  for (Walk w(dim / N); w.r < count; w.next())
    store<N>(y + w.r * dim + w.j * N, load<N>(table + (size_t)ids[w.r] * dim + w.j * N));
}

// ---- launchers -----------------------------------------------------------------------------

// Calls f(T{}) with T the C++ type of dt.
template <class F>
void by_type(DType dt, F&& f) {
  if (dt == DType::F32)
    f(float{});
  else if (dt == DType::BF16)
    f(__nv_bfloat16{});
  else
    f(__half{});
}

template <class F>
void map_any(const void* x, void* y, int64_t n, F f, DType dt, cudaStream_t s) {
  if (n == 0) return;
  check_fits(n, "unary/scale");
  cuda::note_traffic(2.0 * n * dtype_size(dt));
  by_type(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    T* yp = static_cast<T*>(y);
    if (all_aligned(xp, yp))
      SDGEN_LAUNCH((map_kernel<T, kVec<T>, F>), dim3(blocks_for(n / kVec<T>)), dim3(kThreads), 0, s,
                   xp, yp, (unsigned)n, f);
    else
      SDGEN_LAUNCH((map_kernel<T, 1, F>), dim3(blocks_for(n)), dim3(kThreads), 0, s, xp, yp,
                   (unsigned)n, f);
  });
}

// A grid for `rows` rows of `per_row` threads' work along x, with `outer` iterations along y,
// at most kMaxBlocks blocks in all.
dim3 grid2(int64_t per_row, int64_t outer) {
  unsigned gx = blocks_for(per_row);
  int64_t gy = kMaxBlocks / gx;
  if (gy > outer) gy = outer;
  if (gy > 65535) gy = 65535;
  return dim3(gx, (unsigned)(gy > 0 ? gy : 1));
}

}  // namespace

void unary(const void* x, void* y, int64_t n, Backend::Unary op, DType dt, cudaStream_t s) {
  switch (op) {
    case Backend::Unary::kSilu: return map_any(x, y, n, SiluF{}, dt, s);
    case Backend::Unary::kQuickGelu: return map_any(x, y, n, QuickGeluF{}, dt, s);
    case Backend::Unary::kGelu: return map_any(x, y, n, GeluF{}, dt, s);
    case Backend::Unary::kRelu: return map_any(x, y, n, ReluF{}, dt, s);
    case Backend::Unary::kTanh: return map_any(x, y, n, TanhF{}, dt, s);
  }
}

void scale(const void* x, float factor, void* y, int64_t n, DType dt, cudaStream_t s) {
  map_any(x, y, n, ScaleF{factor}, dt, s);
}

void add(const void* a, const void* b, void* y, int64_t n, DType dt, cudaStream_t s) {
  if (n == 0) return;
  check_fits(n, "add");
  cuda::note_traffic(3.0 * n * dtype_size(dt));
  by_type(dt, [&](auto tag) {
    using T = decltype(tag);
    const T *ap = static_cast<const T*>(a), *bp = static_cast<const T*>(b);
    T* yp = static_cast<T*>(y);
    if (all_aligned(ap, bp, yp))
      SDGEN_LAUNCH((add_kernel<T, kVec<T>>), dim3(blocks_for(n / kVec<T>)), dim3(kThreads), 0, s,
                   ap, bp, yp, (unsigned)n);
    else
      SDGEN_LAUNCH((add_kernel<T, 1>), dim3(blocks_for(n)), dim3(kThreads), 0, s, ap, bp, yp,
                   (unsigned)n);
  });
}

void geglu(const void* x, void* y, int64_t rows, int64_t c, DType dt, cudaStream_t s) {
  if (rows * c == 0) return;
  check_fits(rows * 2 * c, "geglu");
  cuda::note_traffic(3.0 * rows * c * dtype_size(dt));
  by_type(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = kVec<T>;
    const T* xp = static_cast<const T*>(x);
    T* yp = static_cast<T*>(y);
    if (c % V == 0 && all_aligned(xp, yp))
      SDGEN_LAUNCH((geglu_kernel<T, V>), dim3(blocks_for(rows * c / V)), dim3(kThreads), 0, s, xp,
                   yp, (unsigned)rows, (unsigned)c);
    else
      SDGEN_LAUNCH((geglu_kernel<T, 1>), dim3(blocks_for(rows * c)), dim3(kThreads), 0, s, xp, yp,
                   (unsigned)rows, (unsigned)c);
  });
}

void add_channel(const void* x, const void* b, void* y, int64_t batch, int64_t spatial, int64_t c,
                 DType dt, cudaStream_t s) {
  int64_t n = batch * spatial * c;
  if (n == 0) return;
  check_fits(n, "add_channel");
  cuda::note_traffic((2.0 * n + batch * c) * dtype_size(dt));
  by_type(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = kVec<T>;
    const T *xp = static_cast<const T*>(x), *bp = static_cast<const T*>(b);
    T* yp = static_cast<T*>(y);
    const int N = c % V == 0 && all_aligned(xp, bp, yp) ? V : 1;
    const dim3 g = grid2(spatial * c / N, batch);
    if (N == V)
      SDGEN_LAUNCH((add_channel_kernel<T, V>), g, dim3(kThreads), 0, s, xp, bp, yp,
                   (unsigned)batch, (unsigned)spatial, (unsigned)c);
    else
      SDGEN_LAUNCH((add_channel_kernel<T, 1>), g, dim3(kThreads), 0, s, xp, bp, yp,
                   (unsigned)batch, (unsigned)spatial, (unsigned)c);
  });
}

void upsample_nearest2x(const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c,
                        DType dt, cudaStream_t s) {
  int64_t total = n * h * w * c * 4;
  if (total == 0) return;
  check_fits(total, "upsample_nearest2x");
  cuda::note_traffic(1.25 * total * dtype_size(dt));
  by_type(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = kVec<T>;
    const T* xp = static_cast<const T*>(x);
    T* yp = static_cast<T*>(y);
    const int N = c % V == 0 && all_aligned(xp, yp) ? V : 1;
    const dim3 g = grid2(2 * w * c / N, n * 2 * h);
    if (N == V)
      SDGEN_LAUNCH((upsample_kernel<T, V>), g, dim3(kThreads), 0, s, xp, yp, (unsigned)n,
                   (unsigned)h, (unsigned)w, (unsigned)c);
    else
      SDGEN_LAUNCH((upsample_kernel<T, 1>), g, dim3(kThreads), 0, s, xp, yp, (unsigned)n,
                   (unsigned)h, (unsigned)w, (unsigned)c);
  });
}

void concat_channels(const void* a, const void* b, void* y, int64_t rows, int64_t ca, int64_t cb,
                     DType dt, cudaStream_t s) {
  if (rows * (ca + cb) == 0) return;
  check_fits(rows * (ca + cb), "concat_channels");
  cuda::note_traffic(2.0 * rows * (ca + cb) * dtype_size(dt));
  by_type(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = kVec<T>;
    const T *ap = static_cast<const T*>(a), *bp = static_cast<const T*>(b);
    T* yp = static_cast<T*>(y);
    if (ca % V == 0 && cb % V == 0 && all_aligned(ap, bp, yp))
      SDGEN_LAUNCH((concat_kernel<T, V>), dim3(blocks_for(rows * (ca + cb) / V)), dim3(kThreads), 0,
                   s, ap, bp, yp, (unsigned)rows, (unsigned)ca, (unsigned)cb);
    else
      SDGEN_LAUNCH((concat_kernel<T, 1>), dim3(blocks_for(rows * (ca + cb))), dim3(kThreads), 0, s,
                   ap, bp, yp, (unsigned)rows, (unsigned)ca, (unsigned)cb);
  });
}

void embedding(const int* ids, const void* table, void* y, int64_t count, int64_t dim, DType dt,
               cudaStream_t s) {
  if (count * dim == 0) return;
  check_fits(count * dim, "embedding");
  cuda::note_traffic(2.0 * count * dim * dtype_size(dt) + 4.0 * count);
  by_type(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = kVec<T>;
    const T* tp = static_cast<const T*>(table);
    T* yp = static_cast<T*>(y);
    if (dim % V == 0 && all_aligned(tp, yp))
      SDGEN_LAUNCH((embedding_kernel<T, V>), dim3(blocks_for(count * dim / V)), dim3(kThreads), 0,
                   s, ids, tp, yp, (unsigned)count, (unsigned)dim);
    else
      SDGEN_LAUNCH((embedding_kernel<T, 1>), dim3(blocks_for(count * dim)), dim3(kThreads), 0, s,
                   ids, tp, yp, (unsigned)count, (unsigned)dim);
  });
}

namespace {
// 8 elements per step for every pair of types (fp32 side: two 16-byte accesses).
template <class Tin, class Tout>
void cast_as(const void* x, void* y, int64_t n, cudaStream_t s) {
  constexpr int V = 8;
  const Tin* xp = static_cast<const Tin*>(x);
  Tout* yp = static_cast<Tout*>(y);
  if (all_aligned(xp, yp))
    SDGEN_LAUNCH((cast_kernel<Tin, Tout, V>), dim3(blocks_for(n / V)), dim3(kThreads), 0, s, xp, yp,
                 (unsigned)n);
  else
    SDGEN_LAUNCH((cast_kernel<Tin, Tout, 1>), dim3(blocks_for(n)), dim3(kThreads), 0, s, xp, yp,
                 (unsigned)n);
}
}  // namespace

void cast(const void* x, DType from, void* y, DType to, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  check_fits(n, "cast");
  cuda::note_traffic((double)n * (dtype_size(from) + dtype_size(to)));
  by_type(from, [&](auto in) {
    by_type(to, [&](auto out) { cast_as<decltype(in), decltype(out)>(x, y, n, s); });
  });
}

}  // namespace kernels
}  // namespace sdgen
