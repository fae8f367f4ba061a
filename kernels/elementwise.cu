// Elementwise kernels: SiLU, QuickGELU, GELU (erf), GEGLU, add, per-channel add (the resnet's time
// embedding), scale, nearest 2x upsampling, channel concatenation, fp32<->fp16 cast, embedding
// gather. Layout: NHWC / [rows, channels], contiguous. Versions: one grid-stride kernel per op,
// templated on T = float | __half (load T, compute float, store T); no vectorized variant yet.
// Test: simt_tests --gtest_filter='CudaOps*' (emulated, against the CPU backend), the same binary
// on a GPU build for real. Benchmark: none yet (these are memory-bound; fusions matter more).
#include "kernels.h"

#include "common/launch.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

constexpr int kThreads = 256;
// A grid-stride loop over at most 1024 blocks keeps a 132-SM GPU full and keeps the emulator's
// fiber count (one per thread) bounded.
dim3 grid_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return dim3((unsigned)(b < 1024 ? (b > 0 ? b : 1) : 1024));
}

#define SDGEN_GRID_STRIDE(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

struct SiluF {
  __device__ float operator()(float v) const { return v * kern::sigmoidf_(v); }
};
struct QuickGeluF {
  __device__ float operator()(float v) const { return v * kern::sigmoidf_(1.702f * v); }
};
struct GeluF {
  __device__ float operator()(float v) const { return kern::gelu_erf(v); }
};
struct ScaleF {
  float s;
  __device__ float operator()(float v) const { return v * s; }
};

template <class T, class F>
__global__ void map_kernel(const T* x, T* y, int64_t n, F f) {
  SDGEN_GRID_STRIDE(i, n) y[i] = from_float<T>(f(to_float(x[i])));
}

template <class T>
__global__ void geglu_kernel(const T* x, T* y, int64_t rows, int64_t c) {
  SDGEN_GRID_STRIDE(i, rows * c) {
    int64_t r = i / c, j = i - r * c;
    float v = to_float(x[r * 2 * c + j]), g = to_float(x[r * 2 * c + c + j]);
    y[i] = from_float<T>(v * kern::gelu_erf(g));
  }
}

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* y, int64_t n) {
  SDGEN_GRID_STRIDE(i, n) y[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <class T>
__global__ void add_channel_kernel(const T* x, const T* b, T* y, int64_t n, int64_t spatial,
                                   int64_t c) {
  SDGEN_GRID_STRIDE(i, n) {
    int64_t batch = i / (spatial * c), ch = i % c;
    y[i] = from_float<T>(to_float(x[i]) + to_float(b[batch * c + ch]));
  }
}

template <class T>
__global__ void upsample_kernel(const T* x, T* y, int64_t n, int64_t h, int64_t w, int64_t c) {
  int64_t total = n * h * 2 * w * 2 * c;
  SDGEN_GRID_STRIDE(i, total) {
    int64_t ch = i % c, p = i / c;
    int64_t ox = p % (2 * w), oy = (p / (2 * w)) % (2 * h), b = p / (4 * w * h);
    y[i] = x[((b * h + oy / 2) * w + ox / 2) * c + ch];
  }
}

template <class T>
__global__ void concat_kernel(const T* a, const T* b, T* y, int64_t rows, int64_t ca, int64_t cb) {
  int64_t c = ca + cb;
  SDGEN_GRID_STRIDE(i, rows * c) {
    int64_t r = i / c, j = i - r * c;
    y[i] = j < ca ? a[r * ca + j] : b[r * cb + j - ca];
  }
}

template <class Tin, class Tout>
__global__ void cast_kernel(const Tin* x, Tout* y, int64_t n) {
  SDGEN_GRID_STRIDE(i, n) y[i] = from_float<Tout>(to_float(x[i]));
}

template <class T>
__global__ void embedding_kernel(const int* ids, const T* table, T* y, int64_t count, int64_t dim) {
  SDGEN_GRID_STRIDE(i, count * dim) {
    int64_t r = i / dim, j = i - r * dim;
    y[i] = table[(int64_t)ids[r] * dim + j];
  }
}

template <class T, class F>
void map(const void* x, void* y, int64_t n, F f, cudaStream_t s) {
  SDGEN_LAUNCH((map_kernel<T, F>), grid_for(n), dim3(kThreads), 0, s, static_cast<const T*>(x),
               static_cast<T*>(y), n, f);
}

template <class F>
void map_any(const void* x, void* y, int64_t n, F f, DType dt, cudaStream_t s) {
  if (n == 0) return;
  cuda::note_traffic(2.0 * n * dtype_size(dt));
  if (dt == DType::F32)
    map<float>(x, y, n, f, s);
  else
    map<__half>(x, y, n, f, s);
}

}  // namespace

void unary(const void* x, void* y, int64_t n, UnaryOp op, DType dt, cudaStream_t s) {
  switch (op) {
    case UnaryOp::kSilu: return map_any(x, y, n, SiluF{}, dt, s);
    case UnaryOp::kQuickGelu: return map_any(x, y, n, QuickGeluF{}, dt, s);
    case UnaryOp::kGelu: return map_any(x, y, n, GeluF{}, dt, s);
  }
}

void scale(const void* x, float factor, void* y, int64_t n, DType dt, cudaStream_t s) {
  map_any(x, y, n, ScaleF{factor}, dt, s);
}

#define SDGEN_DISPATCH(dt, KERNEL, grid, ...)                                              \
  do {                                                                                     \
    if ((dt) == DType::F32) {                                                              \
      using T = float;                                                                     \
      SDGEN_LAUNCH((KERNEL<T>), grid, dim3(kThreads), 0, s, __VA_ARGS__);                  \
    } else {                                                                               \
      using T = __half;                                                                    \
      SDGEN_LAUNCH((KERNEL<T>), grid, dim3(kThreads), 0, s, __VA_ARGS__);                  \
    }                                                                                      \
  } while (0)

void geglu(const void* x, void* y, int64_t rows, int64_t c, DType dt, cudaStream_t s) {
  if (rows * c == 0) return;
  cuda::note_traffic(3.0 * rows * c * dtype_size(dt));
  SDGEN_DISPATCH(dt, geglu_kernel, grid_for(rows * c), static_cast<const T*>(x),
                 static_cast<T*>(y), rows, c);
}

void add(const void* a, const void* b, void* y, int64_t n, DType dt, cudaStream_t s) {
  if (n == 0) return;
  cuda::note_traffic(3.0 * n * dtype_size(dt));
  SDGEN_DISPATCH(dt, add_kernel, grid_for(n), static_cast<const T*>(a), static_cast<const T*>(b),
                 static_cast<T*>(y), n);
}

void add_channel(const void* x, const void* b, void* y, int64_t batch, int64_t spatial, int64_t c,
                 DType dt, cudaStream_t s) {
  int64_t n = batch * spatial * c;
  if (n == 0) return;
  cuda::note_traffic((2.0 * n + batch * c) * dtype_size(dt));
  SDGEN_DISPATCH(dt, add_channel_kernel, grid_for(n), static_cast<const T*>(x),
                 static_cast<const T*>(b), static_cast<T*>(y), n, spatial, c);
}

void upsample_nearest2x(const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c,
                        DType dt, cudaStream_t s) {
  int64_t total = n * h * w * c * 4;
  if (total == 0) return;
  cuda::note_traffic(1.25 * total * dtype_size(dt));
  SDGEN_DISPATCH(dt, upsample_kernel, grid_for(total), static_cast<const T*>(x),
                 static_cast<T*>(y), n, h, w, c);
}

void concat_channels(const void* a, const void* b, void* y, int64_t rows, int64_t ca, int64_t cb,
                     DType dt, cudaStream_t s) {
  if (rows * (ca + cb) == 0) return;
  cuda::note_traffic(2.0 * rows * (ca + cb) * dtype_size(dt));
  SDGEN_DISPATCH(dt, concat_kernel, grid_for(rows * (ca + cb)), static_cast<const T*>(a),
                 static_cast<const T*>(b), static_cast<T*>(y), rows, ca, cb);
}

void embedding(const int* ids, const void* table, void* y, int64_t count, int64_t dim, DType dt,
               cudaStream_t s) {
  if (count * dim == 0) return;
  cuda::note_traffic(2.0 * count * dim * dtype_size(dt) + 4.0 * count);
  SDGEN_DISPATCH(dt, embedding_kernel, grid_for(count * dim), ids, static_cast<const T*>(table),
                 static_cast<T*>(y), count, dim);
}

void cast(const void* x, DType from, void* y, DType to, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  cuda::note_traffic((double)n * (dtype_size(from) + dtype_size(to)));
  dim3 g = grid_for(n), b(kThreads);
  if (from == DType::F32 && to == DType::F16)
    SDGEN_LAUNCH((cast_kernel<float, __half>), g, b, 0, s, static_cast<const float*>(x),
                 static_cast<__half*>(y), n);
  else if (from == DType::F16 && to == DType::F32)
    SDGEN_LAUNCH((cast_kernel<__half, float>), g, b, 0, s, static_cast<const __half*>(x),
                 static_cast<float*>(y), n);
  else if (from == DType::F32)
    SDGEN_LAUNCH((cast_kernel<float, float>), g, b, 0, s, static_cast<const float*>(x),
                 static_cast<float*>(y), n);
  else
    SDGEN_LAUNCH((cast_kernel<__half, __half>), g, b, 0, s, static_cast<const __half*>(x),
                 static_cast<__half*>(y), n);
}

}  // namespace kernels
}  // namespace sdgen
