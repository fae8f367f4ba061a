// Flash attention, forward: out = softmax(scale·q·kᵀ, optional causal mask)·v for every (image,
// head), with the [Lq, Lk] scores kept on chip: each block walks the keys of one (image, head,
// query tile) in tiles, keeping fp32 running row maxima and sums (online softmax) and rescaling its
// output accumulator as the maxima grow. Layout: q, out [N, Lq, H·D], k, v [N, Lk, H·D] row-major,
// head h is columns [h·D, (h+1)·D) of every token; causal: query i sees keys 0..i. One launch per
// call, grid (query tiles, N·H), 128 threads.
// Versions:
//   mma: fp16, and bf16 on sm_80+ (bf16 mma.sync), D a multiple of 8 up to 160. 64 queries per
//        block, 4 warps × 16 rows; Q·Kᵀ and P·V on tensor cores (kern::mma_m16n8k16 /
//        mma_m16n8k16_bf16, fp32 accumulation), P rounded to the storage type for P·V;
//        64-key tiles of K ([key][d]) and Vᵀ ([d][key]) in dynamic shared memory (≤ 44 KiB).
//   fma: fp32 math on CUDA cores for everything else (fp32, bf16 on sm_75, and 16-bit heads of
//        other widths such as the VAE's single 512-wide head): Q tile, K-then-V tile and score tile in shared memory,
//        tile sizes chosen per D (fma_tiling), up to D = 5120.
// Test: simt_tests --gtest_filter='CudaEmu/*attn*' (emulated, against the CPU backend, fp32, fp16
// and bf16; SIMT_ARCH=75 for sm_75's paths; the same test runs on a GPU build as cuda_ops_tests). Benchmark: the same table's perf mode,
// build/benchmarks/op_perf_gpu --filter attn_ (fp16 aligned: mma; fp32: fma; the attn_unaligned
// row in fp16: fma_f16; TFLOP/s and fraction of peak per case).
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels.h"

#include "common/launch.cuh"
#include "common/mma.cuh"
#include "sdgen/error.h"

namespace sdgen {
namespace kernels {
namespace {

using kern::from_float;
using kern::to_float;

constexpr int kThreads = 128;

// Loops over register arrays must unroll (or the arrays go to local memory); the host compiler
// of the emulated build does not know the pragma.
#if defined(__CUDACC__)
#define ATTN_UNROLL _Pragma("unroll")
#else
#define ATTN_UNROLL
#endif

struct Params {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  int lq, lk, heads, d, hd;  // hd = heads·d, the row stride of every tensor
  float scale_log2;          // scale·log2(e): the kernels use exp2
  int causal;
  int bq, bc, ld;  // fma kernel: query and key tile sizes, shared row stride in floats
};

// Calls f(r, c) for the elements tid, tid + kThreads, ... of a rows×cols tile in row-major order,
// stepping (r, c) instead of dividing per element.
template <class F>
__device__ __forceinline__ void for_tile(int rows, int cols, F f) {
  int r = threadIdx.x / cols, c = threadIdx.x % cols;
  const int dr = kThreads / cols, dc = kThreads % cols;
  while (r < rows) {
    f(r, c);
    c += dc;
    r += dr;
    if (c >= cols) c -= cols, ++r;
  }
}

// Wide loads and stores. Emulated they go element by element through the bounds-checked shared
// pointer and fault on a misaligned index or address, as the wide access would on the device.
#if !defined(__CUDACC__)
[[noreturn]] __attribute__((noinline)) inline void misaligned(long long index_or_address, int elements) {
  simt::detail::fault("misaligned " + std::to_string(elements) + "-element access at " +
                      std::to_string(index_or_address));
}
inline void check_aligned(long long index_or_address, int elements) {
  if (__builtin_expect(index_or_address % elements != 0, 0)) misaligned(index_or_address, elements);
}
#endif

// Two halves p[i], p[i + 1] (i even) as one 32-bit word, the low half first.
template <class P>
__device__ __forceinline__ uint32_t ld_pair(const P& p, int i) {
#if defined(__CUDACC__)
  return *reinterpret_cast<const uint32_t*>(&p[i]);
#else
  check_aligned(i, 2);
  check_aligned((long long)reinterpret_cast<uintptr_t>(&p[i]), 4);
  return kern::pack_pair(p[i], p[i + 1]);
#endif
}

template <class T>
__device__ __forceinline__ uint4 ld_global16(const T* p) {
#if defined(__CUDACC__)
  return __ldg(reinterpret_cast<const uint4*>(p));
#else
  check_aligned((long long)reinterpret_cast<uintptr_t>(p), 16);
  uint4 v;
  memcpy(&v, p, 16);
  return v;
#endif
}

template <class P>
__device__ __forceinline__ void st_shared16(const P& p, int i, const uint4& v) {
#if defined(__CUDACC__)
  *reinterpret_cast<uint4*>(&p[i]) = v;
#else
  check_aligned(i, 8);
  std::remove_reference_t<decltype(p[i])> h[8];
  memcpy(static_cast<void*>(h), &v, 16);
  for (int e = 0; e < 8; ++e) p[i + e] = h[e];
#endif
}

template <class T>
__device__ __forceinline__ void st_global_pair(T* p, uint32_t v) {
#if defined(__CUDACC__)
  *reinterpret_cast<uint32_t*>(p) = v;
#else
  check_aligned((long long)reinterpret_cast<uintptr_t>(p), 4);
  memcpy(static_cast<void*>(p), &v, 4);
#endif
}

template <class P>
__device__ __forceinline__ float4 ld_float4(const P& p, int i) {
#if defined(__CUDACC__)
  return *reinterpret_cast<const float4*>(&p[i]);
#else
  check_aligned(i, 4);
  (void)p[i + 3];  // bounds: the last element; the first is checked by taking its address
  const float* f = &p[i];
  return make_float4(f[0], f[1], f[2], f[3]);
#endif
}

// Two floats rounded to T (__half or __nv_bfloat16, nearest even) as one register, lo first.
template <class T>
__device__ __forceinline__ uint32_t pack_floats(float lo, float hi) {
  return kern::pack_pair(kern::from_float<T>(lo), kern::from_float<T>(hi));
}

// ---- mma: fp16 and bf16 on tensor cores ----------------------------------------------------------

constexpr int kMmaRows = 64;  // queries per block: 4 warps × 16
constexpr int kMmaKeys = 64;  // keys per tile
constexpr int kMmaLdv = kMmaKeys + 8;  // Vᵀ row stride (halves)

// kDk = ceil(D / 16): the k-steps of Q·Kᵀ; D itself (a multiple of 8) is a runtime argument, so
// one instantiation serves D = 16·kDk - 8 and 16·kDk.
template <int kDk>
struct MmaShape {
  // K row stride in halves: (kDk·16 + 8)/2 words is 4 mod 8, so the 8 rows of a fragment load
  // fall in distinct banks (and so do Vᵀ's, 36 words apart).
  static constexpr int kLdk = kDk * 16 + 8;
  static constexpr size_t kSharedBytes = (size_t)(kMmaKeys * kLdk + kDk * 16 * kMmaLdv) * 2;
};

// T: __half or __nv_bfloat16 (sm_80+), the storage and tensor-core operand type; the same fragments.
template <class T, int kDk>
__global__ void __launch_bounds__(kThreads) flash_attention_mma_kernel(Params a) {
  constexpr int kLdk = MmaShape<kDk>::kLdk, kDp = kDk * 16, kMaxDt = kDk * 2;
  SDGEN_DYNAMIC_SHARED(T, smem);
  auto Ks = smem;                          // [key][d], d padded to kDp with zeros
  auto Vt = smem + kMmaKeys * kLdk;        // [d][key]: the B operand of P·V is then contiguous in k
  const int D = a.d, hd = a.hd, dt_count = D / 8, chunks = D / 8;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int q0 = blockIdx.x * kMmaRows, wrow = q0 + warp * 16;
  const int n = blockIdx.y / a.heads, h = blockIdx.y % a.heads;
  const size_t head = (size_t)h * D;
  const T* qh = static_cast<const T*>(a.q) + (size_t)n * a.lq * hd + head;
  const T* kh = static_cast<const T*>(a.k) + (size_t)n * a.lk * hd + head;
  const T* vh = static_cast<const T*>(a.v) + (size_t)n * a.lk * hd + head;
  T* oh = static_cast<T*>(a.out) + (size_t)n * a.lq * hd + head;

  // Zero columns D..kDp-1 of K once (tiles never overwrite them): Q·Kᵀ's last k-step reads them.
  if (D < kDp)
    for_tile(kMmaKeys, 1, [&](int r, int) { st_shared16(Ks, r * kLdk + D, make_uint4(0, 0, 0, 0)); });

  // This warp's 16 query rows as A fragments for the whole walk; out-of-range rows and columns
  // are zeros.
  kern::MmaA qa[kDk];
ATTN_UNROLL
  for (int ks = 0; ks < kDk; ++ks)
ATTN_UNROLL
    for (int r = 0; r < 4; ++r) {
      const int row = wrow + kern::mma_a_row(lane, 2 * r), col = ks * 16 + kern::mma_a_col(lane, 2 * r);
      qa[ks].x[r] = row < a.lq && col < D ? ld_pair(qh, row * hd + col) : 0u;
    }

  kern::MmaC o[kMaxDt];
ATTN_UNROLL
  for (int i = 0; i < kMaxDt; ++i) o[i] = kern::MmaC{{0.f, 0.f, 0.f, 0.f}};
  // Rows g and g + 8 of the warp's 16 (g = lane / 4). The sums are this lane's share (its columns
  // of each tile), added across the lane's quad only at the end.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  const int kv_len = a.causal ? min(a.lk, q0 + kMmaRows) : a.lk;
  for (int k0 = 0; k0 < kv_len; k0 += kMmaKeys) {
    __syncthreads();  // the previous tile's fragment loads are done
    for_tile(kMmaKeys, chunks, [&](int r, int c) {
      const uint4 x = k0 + r < a.lk ? ld_global16(kh + (k0 + r) * hd + c * 8) : make_uint4(0, 0, 0, 0);
      st_shared16(Ks, r * kLdk + c * 8, x);
    });
    // Consecutive threads take consecutive keys, so the transposing stores hit distinct banks.
    for_tile(chunks, kMmaKeys, [&](int c, int r) {
      const uint4 x = k0 + r < a.lk ? ld_global16(vh + (k0 + r) * hd + c * 8) : make_uint4(0, 0, 0, 0);
      T e[8];
      memcpy(static_cast<void*>(e), &x, 16);
ATTN_UNROLL
      for (int i = 0; i < 8; ++i) Vt[(c * 8 + i) * kMmaLdv + r] = e[i];
    });
    __syncthreads();
    // A warp past the last query has nothing to compute; with the causal mask, neither has one
    // whose queries all precede the tile's first key (skipping is exact: those scores are -inf).
    if (wrow >= a.lq || (a.causal && k0 > wrow + 15)) continue;

    kern::MmaC s[kMmaKeys / 8];
ATTN_UNROLL
    for (int nt = 0; nt < kMmaKeys / 8; ++nt) {
      s[nt] = kern::MmaC{{0.f, 0.f, 0.f, 0.f}};
ATTN_UNROLL
      for (int ks = 0; ks < kDk; ++ks) {
        kern::MmaB b;
        const int base = (nt * 8 + kern::mma_b_col(lane, 0)) * kLdk + ks * 16;
        b.x[0] = ld_pair(Ks, base + kern::mma_b_row(lane, 0));
        b.x[1] = ld_pair(Ks, base + kern::mma_b_row(lane, 2));
        kern::mma_m16n8k16_t(qh, s[nt], qa[ks], b, s[nt]);
      }
    }

    const bool edge = k0 + kMmaKeys > a.lk || (a.causal && k0 + kMmaKeys - 1 > wrow);
    float tile_max[2] = {-INFINITY, -INFINITY};
ATTN_UNROLL
    for (int nt = 0; nt < kMmaKeys / 8; ++nt)
ATTN_UNROLL
      for (int i = 0; i < 4; ++i) {
        float x = s[nt].x[i] * a.scale_log2;
        if (edge) {
          const int key = k0 + nt * 8 + kern::mma_c_col(lane, i), row = wrow + kern::mma_c_row(lane, i);
          if (key >= a.lk || (a.causal && key > row)) x = -INFINITY;
        }
        s[nt].x[i] = x;
        tile_max[i >> 1] = fmaxf(tile_max[i >> 1], x);
      }
    float base[2], alpha[2];
ATTN_UNROLL
    for (int r = 0; r < 2; ++r) {
      // The 4 lanes of a quad hold a row's 8-column slices of every n-tile.
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float m_new = fmaxf(m[r], tile_max[r]);
      // A row with no visible key yet keeps max -inf: subtract 0 instead, so exp2 gives 0, not NaN.
      base[r] = m_new == -INFINITY ? 0.f : m_new;
      alpha[r] = exp2f(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= alpha[r];
    }
ATTN_UNROLL
    for (int i = 0; i < kMaxDt; ++i) {
      o[i].x[0] *= alpha[0], o[i].x[1] *= alpha[0];
      o[i].x[2] *= alpha[1], o[i].x[3] *= alpha[1];
    }

ATTN_UNROLL
    for (int kk = 0; kk < kMmaKeys / 16; ++kk) {
      // The C fragments of n-tiles 2kk and 2kk+1 (keys 16kk..16kk+15) are, element for element,
      // the A fragment of P's 16×16 block (mma.cuh's layouts), so P never leaves registers.
      float p[8];
ATTN_UNROLL
      for (int i = 0; i < 4; ++i) {
        p[i] = exp2f(s[2 * kk].x[i] - base[i >> 1]);
        p[4 + i] = exp2f(s[2 * kk + 1].x[i] - base[i >> 1]);
      }
      l[0] += p[0] + p[1] + p[4] + p[5];
      l[1] += p[2] + p[3] + p[6] + p[7];
      kern::MmaA pa;
      pa.x[0] = pack_floats<T>(p[0], p[1]);
      pa.x[1] = pack_floats<T>(p[2], p[3]);
      pa.x[2] = pack_floats<T>(p[4], p[5]);
      pa.x[3] = pack_floats<T>(p[6], p[7]);
ATTN_UNROLL
      for (int dt = 0; dt < kMaxDt; ++dt) {
        if (dt >= dt_count) break;
        kern::MmaB b;
        const int base_v = (dt * 8 + kern::mma_b_col(lane, 0)) * kMmaLdv + kk * 16;
        b.x[0] = ld_pair(Vt, base_v + kern::mma_b_row(lane, 0));
        b.x[1] = ld_pair(Vt, base_v + kern::mma_b_row(lane, 2));
        kern::mma_m16n8k16_t(qh, o[dt], pa, b, o[dt]);
      }
    }
  }

  float inv[2];
ATTN_UNROLL
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;  // no key at all (Lk = 0): zeros, as the CPU backend
  }
  const int row0 = wrow + kern::mma_c_row(lane, 0), row1 = wrow + kern::mma_c_row(lane, 2);
ATTN_UNROLL
  for (int dt = 0; dt < kMaxDt; ++dt) {
    if (dt >= dt_count) break;
    const int col = dt * 8 + kern::mma_c_col(lane, 0);
    if (row0 < a.lq) st_global_pair(oh + row0 * hd + col, pack_floats<T>(o[dt].x[0] * inv[0], o[dt].x[1] * inv[0]));
    if (row1 < a.lq) st_global_pair(oh + row1 * hd + col, pack_floats<T>(o[dt].x[2] * inv[1], o[dt].x[3] * inv[1]));
  }
}

// ---- fma: fp32 math, any head width ------------------------------------------------------------

constexpr int kFmaMaxDots = 16;  // scores per thread per tile: bq·bc ≤ 16·kThreads

struct FmaTiling {
  int bq = 0, bc = 0, ld = 0;
  size_t shared_bytes = 0;
  int chunks = 0;  // float4 columns of the output per thread
};

// Row stride for the Q and K/V tiles: a multiple of 4 floats (float4 access) that is an odd number
// of float4s, so the 8 lanes of a quarter warp reading 8 different rows hit disjoint banks.
inline int fma_ld(int d) {
  int ld = (d + 3) / 4 * 4;
  return (ld / 4) % 2 == 0 ? ld + 4 : ld;
}

inline size_t fma_shared_bytes(int bq, int bc, int ld) {
  return ((size_t)(bq + bc) * ld + (size_t)bq * (bc + 1) + bq) * sizeof(float);
}

// bq: 64 queries for D ≤ 80, fewer for wider heads, so that the output accumulator stays at most
// 11 float4s per thread; bc: the largest key tile (≤ 64) with at most 16 scores per thread that
// fits in 64 KiB of shared memory. Returns bq = 0 where no tile fits (D > 5120).
inline FmaTiling fma_tiling(int d) {
  FmaTiling t;
  t.ld = fma_ld(d);
  int bq = 64;
  while (bq > 1 && (long long)bq * d > 5120) bq /= 2;
  if ((long long)bq * d > 5120) return t;
  for (int bc = 64; bc >= 1; bc /= 2) {
    const size_t bytes = fma_shared_bytes(bq, bc, t.ld);
    if (bq * bc <= kFmaMaxDots * kThreads && bytes <= 64 * 1024) {
      t.bq = bq, t.bc = bc, t.shared_bytes = bytes;
      const int tpr = kThreads / bq;
      t.chunks = (t.ld / 4 + tpr - 1) / tpr;
      return t;
    }
  }
  return t;
}

template <class T, int kChunks>
__global__ void __launch_bounds__(kThreads) flash_attention_fma_kernel(Params a) {
  const int D = a.d, hd = a.hd, bq = a.bq, bc = a.bc, ld = a.ld, lds = bc + 1;
  SDGEN_DYNAMIC_SHARED(float, smem);
  auto Qs = smem;                // [bq][ld], scaled by scale·log2(e); zero beyond D and Lq
  auto KVs = smem + bq * ld;     // [bc][ld]: the tile's keys, then its values
  auto Ss = KVs + bc * ld;       // [bq][lds]: scores, then probabilities
  auto row_s = Ss + bq * lds;    // [bq]: each row's rescale factor for the tile, finally 1/sum
  const int tid = threadIdx.x, q0 = blockIdx.x * bq;
  const int n = blockIdx.y / a.heads, h = blockIdx.y % a.heads;
  const size_t head = (size_t)h * D;
  const T* qh = static_cast<const T*>(a.q) + (size_t)n * a.lq * hd + head;
  const T* kh = static_cast<const T*>(a.k) + (size_t)n * a.lk * hd + head;
  const T* vh = static_cast<const T*>(a.v) + (size_t)n * a.lk * hd + head;
  T* oh = static_cast<T*>(a.out) + (size_t)n * a.lq * hd + head;

  for_tile(bq, ld, [&](int r, int c) {
    Qs[r * ld + c] = c < D && q0 + r < a.lq ? to_float(qh[(q0 + r) * hd + c]) * a.scale_log2 : 0.f;
  });

  // Scores: one key per thread, rows s_row0 + s_step·j.
  const int s_key = tid % bc, s_row0 = tid / bc, s_step = kThreads / bc;
  // Output: tpr threads per row, float4 columns o_u + tpr·j.
  const int tpr = kThreads / bq, o_row = tid / tpr, o_u = tid % tpr, ld4 = ld / 4;
  float4 o[kChunks];
ATTN_UNROLL
  for (int j = 0; j < kChunks; ++j) o[j] = make_float4(0.f, 0.f, 0.f, 0.f);
  float m = -INFINITY, l = 0.f;  // row tid's, for tid < bq

  const int kv_len = a.causal ? min(a.lk, q0 + bq) : a.lk;
  for (int k0 = 0; k0 < kv_len; k0 += bc) {
    const int kn = min(bc, kv_len - k0);
    auto load = [&](const T* src) {
      for_tile(bc, ld, [&](int r, int c) {
        KVs[r * ld + c] = c < D && r < kn ? to_float(src[(k0 + r) * hd + c]) : 0.f;
      });
    };
    __syncthreads();  // the previous tile's reads of KVs, Ss and row_s are done
    load(kh);
    __syncthreads();

    float acc[kFmaMaxDots];
ATTN_UNROLL
    for (int j = 0; j < kFmaMaxDots; ++j) acc[j] = 0.f;
    for (int c = 0; c < ld; c += 4) {
      const float4 kv = ld_float4(KVs, s_key * ld + c);
ATTN_UNROLL
      for (int j = 0; j < kFmaMaxDots; ++j) {
        const int r = s_row0 + s_step * j;
        if (r < bq) {
          const float4 qv = ld_float4(Qs, r * ld + c);
          acc[j] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
        }
      }
    }
ATTN_UNROLL
    for (int j = 0; j < kFmaMaxDots; ++j) {
      const int r = s_row0 + s_step * j;
      if (r < bq) {
        const bool masked = s_key >= kn || (a.causal && k0 + s_key > q0 + r);
        Ss[r * lds + s_key] = masked ? -INFINITY : acc[j];
      }
    }
    __syncthreads();

    if (tid < bq) {
      float mx = -INFINITY;
      for (int c = 0; c < kn; ++c) mx = fmaxf(mx, Ss[tid * lds + c]);
      const float m_new = fmaxf(m, mx);
      // A row with no visible key yet keeps max -inf: subtract 0 instead, so exp2 gives 0, not NaN.
      const float base = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = exp2f(m - base);
      float sum = 0.f;
      for (int c = 0; c < kn; ++c) {
        const float p = exp2f(Ss[tid * lds + c] - base);
        Ss[tid * lds + c] = p;
        sum += p;
      }
      l = l * alpha + sum;
      m = m_new;
      row_s[tid] = alpha;
    }
    load(vh);  // the keys are no longer read
    __syncthreads();

    const float alpha = row_s[o_row];
ATTN_UNROLL
    for (int j = 0; j < kChunks; ++j) o[j].x *= alpha, o[j].y *= alpha, o[j].z *= alpha, o[j].w *= alpha;
    for (int c = 0; c < kn; ++c) {
      const float p = Ss[o_row * lds + c];
ATTN_UNROLL
      for (int j = 0; j < kChunks; ++j) {
        const int col4 = o_u + tpr * j;
        if (col4 < ld4) {
          const float4 vv = ld_float4(KVs, c * ld + col4 * 4);
          o[j].x += p * vv.x, o[j].y += p * vv.y, o[j].z += p * vv.z, o[j].w += p * vv.w;
        }
      }
    }
  }

  __syncthreads();  // the last tile's reads of row_s are done
  if (tid < bq) row_s[tid] = l > 0.f ? 1.f / l : 0.f;  // no key at all (Lk = 0): zeros, as the CPU
  __syncthreads();
  const int row = q0 + o_row;
  if (row < a.lq) {
    const float inv = row_s[o_row];
ATTN_UNROLL
    for (int j = 0; j < kChunks; ++j) {
      const int col = (o_u + tpr * j) * 4;
      const float x[4] = {o[j].x, o[j].y, o[j].z, o[j].w};
ATTN_UNROLL
      for (int e = 0; e < 4; ++e)
        if (col + e < D) oh[row * hd + col + e] = from_float<T>(x[e] * inv);
    }
  }
}

// ---- launchers -------------------------------------------------------------------------------------

// The names the census knows these kernels by (tests/simt/simt_census.h): their FLOPs count as
// attention, the mma kernel's at the tensor-core rate.
constexpr const char* kMmaName = "flash_attention_mma_kernel";
constexpr const char* kFmaName = "flash_attention_fma_kernel";

void census_class(const char* name, bool tensor_cores) {
#if !defined(__CUDACC__)
  simt::census::set_kernel_class(name, "attention", tensor_cores);
#else
  (void)name, (void)tensor_cores;
#endif
}

template <class T, int kDk>
void launch_mma(const Params& p, dim3 grid, cudaStream_t s) {
  census_class(kMmaName, true);
  cuda::launch_kernel(kMmaName, flash_attention_mma_kernel<T, kDk>, grid, dim3(kThreads),
                      MmaShape<kDk>::kSharedBytes, s, p);
}

template <class T>
void launch_mma_width(const Params& p, int d, dim3 grid, cudaStream_t s) {
  switch ((d + 15) / 16) {
    case 1: launch_mma<T, 1>(p, grid, s); break;
    case 2: launch_mma<T, 2>(p, grid, s); break;
    case 3: launch_mma<T, 3>(p, grid, s); break;
    case 4: launch_mma<T, 4>(p, grid, s); break;
    case 5: launch_mma<T, 5>(p, grid, s); break;
    case 6: launch_mma<T, 6>(p, grid, s); break;
    case 7: launch_mma<T, 7>(p, grid, s); break;
    case 8: launch_mma<T, 8>(p, grid, s); break;
    case 9: launch_mma<T, 9>(p, grid, s); break;
    default: launch_mma<T, 10>(p, grid, s); break;
  }
}

// bf16 mma.sync is sm_80's; an sm_75 device (Turing) runs bf16 attention on the fma kernel. The
// emulated build takes the architecture whose code it emulates (SIMT_ARCH).
bool bf16_tensor_cores() {
#if !defined(__CUDACC__)
  return simt::emulated_arch() >= 80;
#else
  static const bool has = [] {
    int device = 0, major = 0;
    SDGEN_CUDA_CHECK(cudaGetDevice(&device));
    SDGEN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    return major >= 8;
  }();
  return has;
#endif
}

template <class T, int kChunks>
void launch_fma(const Params& p, size_t bytes, dim3 grid, cudaStream_t s) {
  void (*kernel)(Params) = flash_attention_fma_kernel<T, kChunks>;
  if (bytes > 48 * 1024)
    SDGEN_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  census_class(kFmaName, false);
  cuda::launch_kernel(kFmaName, kernel, grid, dim3(kThreads), bytes, s, p);
}

template <class T>
void launch_fma_chunks(const Params& p, int chunks, size_t bytes, dim3 grid, cudaStream_t s) {
  // Output registers per thread by bucket: D = 3..8 (1-2 float4s), 24 (4), 40 (6), 64/512 (9),
  // 80/160 (11).
  if (chunks <= 2) launch_fma<T, 2>(p, bytes, grid, s);
  else if (chunks <= 4) launch_fma<T, 4>(p, bytes, grid, s);
  else if (chunks <= 6) launch_fma<T, 6>(p, bytes, grid, s);
  else if (chunks <= 9) launch_fma<T, 9>(p, bytes, grid, s);
  else launch_fma<T, 11>(p, bytes, grid, s);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void attention(const void* q, const void* k, const void* v, void* out, int64_t n, int64_t lq,
               int64_t lk, int heads, int64_t d, float scale, bool causal, DType dt,
               cudaStream_t s) {
  const int64_t hd = heads * d;
  if (n * lq * hd == 0) return;
  // 32-bit indices inside the kernels: one head's rows, and the grid's y.
  if (lq * hd >= (int64_t(1) << 31) || lk * hd >= (int64_t(1) << 31) || n * heads > 65535)
    throw_runtime("attention: " + std::to_string(n) + " x " + std::to_string(heads) + " heads of " +
                  std::to_string(lq) + " x " + std::to_string(lk) + " tokens is beyond the CUDA kernel's 32-bit indexing");
  Params p{q, k, v, out, (int)lq, (int)lk, heads, (int)d, (int)hd, scale * 1.4426950408889634f,
           causal ? 1 : 0, 0, 0, 0};
  // Causal (query i sees keys 0..i): Σ_i min(lk, i + 1) score pairs instead of lq·lk.
  const double pairs = !causal ? (double)lq * lk
                       : lq <= lk ? (double)lq * (lq + 1) / 2
                                  : (double)lk * (lk + 1) / 2 + (double)(lq - lk) * lk;
  cuda::note_traffic((2.0 * n * lq * hd + 2.0 * n * lk * hd) * dtype_size(dt), 4.0 * n * heads * pairs * d);

  const bool mma = (dt == DType::F16 || (dt == DType::BF16 && bf16_tensor_cores())) && d % 8 == 0 && d <= 160 &&
                   aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out);
  if (mma) {
    const dim3 grid(cuda::ceil_div(lq, kMmaRows), (unsigned)(n * heads));
    if (dt == DType::BF16)
      launch_mma_width<__nv_bfloat16>(p, (int)d, grid, s);
    else
      launch_mma_width<__half>(p, (int)d, grid, s);
    return;
  }
  const FmaTiling t = fma_tiling((int)d);
  if (t.bq == 0) throw_runtime("attention: head width " + std::to_string(d) + " is beyond the CUDA kernel (at most 5120)");
  p.bq = t.bq, p.bc = t.bc, p.ld = t.ld;
  const dim3 grid(cuda::ceil_div(lq, t.bq), (unsigned)(n * heads));
  if (dt == DType::F32)
    launch_fma_chunks<float>(p, t.chunks, t.shared_bytes, grid, s);
  else if (dt == DType::BF16)  // sm_75, or heads the mma kernel does not take
    launch_fma_chunks<__nv_bfloat16>(p, t.chunks, t.shared_bytes, grid, s);
  else
    launch_fma_chunks<__half>(p, t.chunks, t.shared_bytes, grid, s);
}

}  // namespace kernels
}  // namespace sdgen
