// The emulator's own test kernels: written as CUDA (they compile with nvcc too), run here through
// the SIMT emulator by simt_tests. Each exercises one part of the execution model.
#include "simt_test_kernels.h"

#include "common/launch.cuh"
#include "common/mma.cuh"

namespace simt_test {
namespace {

__global__ void block_reduce_kernel(const float* x, float* out) {
  __shared__ float s[256];
  int t = threadIdx.x;
  s[t] = x[blockIdx.x * 256 + t];
  __syncthreads();
  for (int stride = 128; stride > 0; stride >>= 1) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

__global__ void shuffle_reduce_kernel(const float* x, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? x[i] : 0.f;
  v = sdgen::kern::warp_sum(v);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, v);
}

__global__ void warp_scan_votes_kernel(const float* x, float* scan, unsigned* ballot, int* any,
                                       int* all) {
  int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31, w = i / 32;
  float v = x[i];
  for (int d = 1; d < 32; d <<= 1) {
    float u = __shfl_up_sync(0xffffffffu, v, d);
    if (lane >= d) v += u;
  }
  scan[i] = v;
  unsigned b = __ballot_sync(0xffffffffu, x[i] > 0.f);
  int a = __any_sync(0xffffffffu, x[i] > 0.f);
  int l = __all_sync(0xffffffffu, x[i] > 0.f);
  if (lane == 0) {
    ballot[w] = b;
    any[w] = a;
    all[w] = l;
  }
}

__global__ void shuffle_width_kernel(int* out) {
  const int lane = threadIdx.x;
  const int args[4] = {1, 3, 8, 17};
  for (int m = 0; m < 4; ++m) {
    out[(0 * 4 + m) * 32 + lane] = __shfl_xor_sync(0xffffffffu, lane, args[m], 8);
    out[(1 * 4 + m) * 32 + lane] = __shfl_up_sync(0xffffffffu, lane, (unsigned)args[m], 8);
    out[(2 * 4 + m) * 32 + lane] = __shfl_down_sync(0xffffffffu, lane, (unsigned)args[m], 8);
    out[(3 * 4 + m) * 32 + lane] = __shfl_sync(0xffffffffu, lane, args[m], 8);
  }
}

constexpr int kTile = 16;
__global__ void tiled_gemm_kernel(const float* A, const float* B, float* C, int M, int N, int K) {
  __shared__ float As[kTile][kTile];
  __shared__ float Bs[kTile][kTile + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += kTile) {
    As[ty][tx] = (row < M && k0 + tx < K) ? A[(long long)row * K + k0 + tx] : 0.f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(long long)(k0 + ty) * N + col] : 0.f;
    __syncthreads();
    for (int k = 0; k < kTile; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N) C[(long long)row * N + col] = acc;
}

// One warp per 16x8 tile of C; four warps per block along N.
__global__ void mma_gemm_kernel(const __half* A, const __half* W, float* C, int M, int N, int K) {
  using namespace sdgen::kern;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int m0 = blockIdx.y * 16, n0 = (blockIdx.x * 4 + warp) * 8;
  if (n0 >= N) return;  // whole warps only: the mma below needs all 32 lanes
  MmaC acc = {{0.f, 0.f, 0.f, 0.f}};
  for (int k0 = 0; k0 < K; k0 += 16) {
    MmaA a = load_mma_a(A + (long long)m0 * K + k0, K, lane);
    MmaB b = load_mma_b(W + (long long)n0 * K + k0, K, lane);
    mma_m16n8k16(acc, a, b, acc);
  }
  for (int i = 0; i < 4; ++i)
    C[(long long)(m0 + mma_c_row(lane, i)) * N + n0 + mma_c_col(lane, i)] = acc.x[i];
}

__global__ void partial_barrier_kernel(float* x) {
  if (threadIdx.x >= 200) return;
  x[threadIdx.x] = 1.f;
  __syncthreads();
}

__global__ void warp_exited_kernel(float* x) {
  if ((threadIdx.x & 31) >= 16) return;
  float v = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
  x[threadIdx.x] = v;
}

__global__ void shared_oob_kernel(float* x, int index) {
  SDGEN_DYNAMIC_SHARED(float, s);
  if (threadIdx.x == 5) s[index] = 1.f;
  __syncthreads();
  if (threadIdx.x == 0) x[0] = s[0];
}

__global__ void trivial_kernel(float* x) {
  if (threadIdx.x == 0 && blockIdx.x == 0) x[0] = 1.f;
}

__global__ void divergent_barrier_kernel(float* x) {
  if ((threadIdx.x >> 5) & 1) {
    x[threadIdx.x] = 1.f;
    __syncthreads();
  } else {
    x[threadIdx.x] = 2.f;
    __syncthreads();
  }
}

__global__ void shared_fill_kernel(float* x, int n) {
  SDGEN_DYNAMIC_SHARED(float, s);
  for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)i;
  __syncthreads();
  if (threadIdx.x == 0) x[0] = s[n - 1];
}

// Neighbour exchange through shared memory; `barrier` false leaves out the __syncthreads between
// the write and the read (the bug the block-order alternation exposes).
__global__ void neighbour_kernel(const float* x, float* y, bool barrier) {
  __shared__ float s[64];
  int t = threadIdx.x;
  s[t] = x[blockIdx.x * 64 + t];
  if (barrier) __syncthreads();
  y[blockIdx.x * 64 + t] = s[(t + 1) % 64] - s[(t + 63) % 64];
}

// One m16n8k8 (sm_75's shape): D[16,8] = A[16,8] · W[8,8]ᵀ + C[16,8], fragments loaded by the
// first halves of the m16n8k16 layout helpers.
__global__ void mma_k8_kernel(const __half* A, const __half* W, const float* C, float* D) {
  using namespace sdgen::kern;
  int lane = threadIdx.x;
  uint32_t a[2], b;
  for (int r = 0; r < 2; ++r)
    a[r] = pack_half2(A[mma_a_row(lane, 2 * r) * 8 + mma_a_col(lane, 2 * r)],
                      A[mma_a_row(lane, 2 * r + 1) * 8 + mma_a_col(lane, 2 * r + 1)]);
  b = pack_half2(W[mma_b_col(lane, 0) * 8 + mma_b_row(lane, 0)],
                 W[mma_b_col(lane, 1) * 8 + mma_b_row(lane, 1)]);
  MmaC c, d;
  for (int i = 0; i < 4; ++i) c.x[i] = C[mma_c_row(lane, i) * 8 + mma_c_col(lane, i)];
  mma_m16n8k8(d, a[0], a[1], b, c);
  for (int i = 0; i < 4; ++i) D[mma_c_row(lane, i) * 8 + mma_c_col(lane, i)] = d.x[i];
}

// D[16,8] = A[16,16] · W[8,16]ᵀ as two m16n8k8 along k, split as sm_75 does (k = 0..7 from
// a.x[0..1] and b.x[0]) or, with `wrong_split`, as if A's registers ran along k first (a.x[0],
// a.x[2]).
__global__ void mma_split_kernel(const __half* A, const __half* W, float* D, bool wrong_split) {
  using namespace sdgen::kern;
  int lane = threadIdx.x;
  MmaA a = load_mma_a(A, 16, lane);
  MmaB b = load_mma_b(W, 16, lane);
  MmaC zero = {{0.f, 0.f, 0.f, 0.f}}, t, d;
  if (wrong_split) {
    mma_m16n8k8(t, a.x[0], a.x[2], b.x[0], zero);
    mma_m16n8k8(d, a.x[1], a.x[3], b.x[1], t);
  } else {
    mma_m16n8k8(t, a.x[0], a.x[1], b.x[0], zero);
    mma_m16n8k8(d, a.x[2], a.x[3], b.x[1], t);
  }
  for (int i = 0; i < 4; ++i) D[mma_c_row(lane, i) * 8 + mma_c_col(lane, i)] = d.x[i];
}

__global__ void neighbour_dynamic_kernel(const float* x, float* y, bool barrier) {
  SDGEN_DYNAMIC_SHARED(float, s);
  int t = threadIdx.x;
  s[t] = x[blockIdx.x * 64 + t];
  if (barrier) __syncthreads();
  y[blockIdx.x * 64 + t] = s[(t + 1) % 64] - s[(t + 63) % 64];
}

// Only block `writer` fills the array; every block then reads it back.
__global__ void static_shared_reread_kernel(float* y, int writer) {
  __shared__ float s[64];
  int t = threadIdx.x;
  if ((int)blockIdx.x == writer) s[t] = (float)t;
  __syncthreads();
  y[blockIdx.x * 64 + t] = s[t];
}

struct Scratch {
  float* p = nullptr;
  Scratch() { SDGEN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), 4096 * sizeof(float))); }
  ~Scratch() { cudaFree(p); }
};

}  // namespace

void block_reduce(const float* x, float* out, int blocks) {
  SDGEN_LAUNCH(block_reduce_kernel, dim3(blocks), dim3(256), 0, 0, x, out);
}
void shuffle_reduce(const float* x, float* out, int n) {
  SDGEN_LAUNCH(shuffle_reduce_kernel, dim3(sdgen::cuda::ceil_div(n, 128)), dim3(128), 0, 0, x,
               out, n);
}
void warp_scan_votes(const float* x, float* scan, unsigned* ballot, int* any, int* all, int warps) {
  SDGEN_LAUNCH(warp_scan_votes_kernel, dim3(warps), dim3(32), 0, 0, x, scan, ballot, any, all);
}
void shuffle_width_sources(int* out) { SDGEN_LAUNCH(shuffle_width_kernel, dim3(1), dim3(32), 0, 0, out); }
void tiled_gemm(const float* A, const float* B, float* C, int M, int N, int K) {
  dim3 grid(sdgen::cuda::ceil_div(N, kTile), sdgen::cuda::ceil_div(M, kTile));
  SDGEN_LAUNCH(tiled_gemm_kernel, grid, dim3(kTile, kTile), 0, 0, A, B, C, M, N, K);
}
void mma_gemm(const __half* A, const __half* W, float* C, int M, int N, int K) {
  dim3 grid(sdgen::cuda::ceil_div(N, 32), (unsigned)(M / 16));
  SDGEN_LAUNCH(mma_gemm_kernel, grid, dim3(128), 0, 0, A, W, C, M, N, K);
}

void mma_k8(const __half* A, const __half* W, const float* C, float* D) {
  SDGEN_LAUNCH(mma_k8_kernel, dim3(1), dim3(32), 0, 0, A, W, C, D);
}
void mma_split(const __half* A, const __half* W, float* D, bool wrong_split) {
  SDGEN_LAUNCH(mma_split_kernel, dim3(1), dim3(32), 0, 0, A, W, D, wrong_split);
}

void neighbour_exchange(const float* x, float* y, int blocks, bool barrier, bool dynamic_shared) {
  if (dynamic_shared)
    SDGEN_LAUNCH(neighbour_dynamic_kernel, dim3(blocks), dim3(64), 64 * sizeof(float), 0, x, y,
                 barrier);
  else
    SDGEN_LAUNCH(neighbour_kernel, dim3(blocks), dim3(64), 0, 0, x, y, barrier);
}
void static_shared_reread(float* y, int blocks, int writer) {
  SDGEN_LAUNCH(static_shared_reread_kernel, dim3(blocks), dim3(64), 0, 0, y, writer);
}

void fault_partial_barrier() {
  Scratch s;
  SDGEN_LAUNCH(partial_barrier_kernel, dim3(2), dim3(256), 0, 0, s.p);
}
void fault_warp_exited_lanes() {
  Scratch s;
  SDGEN_LAUNCH(warp_exited_kernel, dim3(1), dim3(64), 0, 0, s.p);
}
void fault_shared_oob(int index) {
  Scratch s;
  SDGEN_LAUNCH(shared_oob_kernel, dim3(1), dim3(32), 64 * sizeof(float), 0, s.p, index);
}
void fault_launch(int threads, size_t shared_bytes) {
  Scratch s;
  SDGEN_LAUNCH(trivial_kernel, dim3(1), dim3(threads), shared_bytes, 0, s.p);
}
void fault_divergent_barrier() {
  Scratch s;
  SDGEN_LAUNCH(divergent_barrier_kernel, dim3(1), dim3(128), 0, 0, s.p);
}
void opt_in_shared(int bytes) {
  Scratch s;
  SDGEN_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(shared_fill_kernel),
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  SDGEN_LAUNCH(shared_fill_kernel, dim3(1), dim3(256), (size_t)bytes, 0, s.p,
               bytes / (int)sizeof(float));
}

}  // namespace simt_test
