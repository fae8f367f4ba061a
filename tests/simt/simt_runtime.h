// The SIMT emulator: the CUDA execution model on the host, as our kernels use it. A grid runs block
// by block; a block's threads run as fibers (Boost.Context) that switch only at __syncthreads and
// warp operations, so straight-line code costs what it costs in C++. kernels/common/cuda_compat.cuh
// includes this header when a kernel file is compiled by the host compiler instead of nvcc; the
// kernel source itself is unchanged. Shared memory, static and dynamic, is filled with 0xFF (NaN)
// before every block. Faults (partial barriers, warp masks naming exited lanes, out-of-bounds
// dynamic shared memory, launches beyond sm_75's limits) throw simt::Fault naming the kernel,
// block and thread.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace simt {

// A kernel fault or a launch the real device would refuse.
class Fault : public std::runtime_error {
 public:
  explicit Fault(const std::string& m) : std::runtime_error(m) {}
};

// Limits of the oldest architecture we ship for (sm_75, Turing); launches beyond them fault.
struct Limits {
  static constexpr unsigned kMaxThreadsPerBlock = 1024;
  static constexpr unsigned kMaxBlockZ = 64;
  static constexpr unsigned kMaxGridYZ = 65535;
  static constexpr size_t kDefaultDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute
  static constexpr size_t kMaxDynamicShared = 64 * 1024;      // sm_75 opt-in maximum per block
};

struct LaunchSpec {
  const char* name;
  const void* func;  // the kernel's address, for attributes set with cudaFuncSetAttribute
  dim3 grid, block;
  size_t dynamic_shared;
};

// Runs `body(closure)` once per thread of the grid. Synchronous: returns when the grid is done.
void launch(const LaunchSpec& spec, void (*body)(void*), void* closure);
template <class F>
void launch(const LaunchSpec& spec, F& f) {
  launch(spec, [](void* p) { (*static_cast<F*>(p))(); }, &f);
}

// Counters since start-up, for the speed report in the tests.
struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, switches = 0;
};
Stats stats();

namespace detail {

enum class WarpOp : uint8_t {
  kSync, kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kMma, kMmaK8, kMmaBf16
};

struct ThreadCtx;
struct BlockCtx;
extern thread_local ThreadCtx* g_thread;
extern thread_local BlockCtx* g_block;

const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
void syncthreads(const char* file, int line);
// One warp-collective operation: every lane named in `mask` must arrive with the same op and mask.
// `src`/`dst` point at `size` bytes of this lane's operand and result (they stay valid while the
// lane waits, since they live on its fiber's stack).
void warp_collective(WarpOp op, unsigned mask, const void* src, void* dst, size_t size, int arg,
                     int width, const char* file, int line);
void* dynamic_shared(size_t* bytes);
[[noreturn]] void fault(const std::string& what);

}  // namespace detail

// Dynamic shared memory seen through a bounds-checked pointer.
template <class T>
class SharedPtr {
 public:
  SharedPtr(T* p, size_t n) : p_(p), n_(n) {}
  template <class I>
  T& operator[](I i) const {
    if (i < 0 || (size_t)i >= n_)
      detail::fault("dynamic shared memory index " + std::to_string((long long)i) +
                    " beyond the launch's " + std::to_string(n_) + " elements");
    return p_[i];
  }
  template <class I>
  SharedPtr operator+(I off) const {
    if (off < 0 || (size_t)off > n_) detail::fault("dynamic shared memory offset beyond the launch's size");
    return SharedPtr(p_ + off, n_ - (size_t)off);
  }
  T& operator*() const { return (*this)[0]; }
  // Unchecked escape hatch (e.g. to reinterpret); indexing through the result is not checked.
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_;
  size_t n_;
};

template <class T>
SharedPtr<T> dynamic_shared() {
  size_t bytes = 0;
  T* p = static_cast<T*>(detail::dynamic_shared(&bytes));
  return SharedPtr<T>(p, bytes / sizeof(T));
}

// ---- warp operations -----------------------------------------------------------------------
template <class T>
T shfl(detail::WarpOp op, unsigned mask, T var, int arg, int width, const char* f, int l) {
  T out;
  detail::warp_collective(op, mask, &var, &out, sizeof(T), arg, width, f, l);
  return out;
}
// Tensor core: one warp's mma.sync.m16n8k16.row.col.f32.f16.f16.f32 (see kernels/common/mma.cuh).
struct MmaOperands {
  uint32_t a[4];  // four .f16x2 registers of A (16x16, row-major)
  uint32_t b[2];  // two .f16x2 registers of B (16x8, column-major)
  float c[4];     // the accumulator fragment
};
inline void mma_m16n8k16(float d[4], const MmaOperands& in, const char* f, int l) {
  detail::warp_collective(detail::WarpOp::kMma, 0xffffffffu, &in, d, sizeof(MmaOperands), 0, 32,
                          f, l);
}

// The same with bf16 operands, mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80 and later; the
// registers hold .bf16x2 pairs in the same fragment layout).
inline void mma_m16n8k16_bf16(float d[4], const MmaOperands& in, const char* f, int l) {
  detail::warp_collective(detail::WarpOp::kMmaBf16, 0xffffffffu, &in, d, sizeof(MmaOperands), 0, 32,
                          f, l);
}

// sm_75's tensor-core instruction, mma.sync.m16n8k8.row.col.f32.f16.f16.f32: its fragments are
// the first halves of m16n8k16's, and sm_75 composes m16n8k16 from two (kernels/common/mma.cuh).
struct MmaK8Operands {
  uint32_t a[2];  // two .f16x2 registers of A (16x8, row-major)
  uint32_t b;     // one .f16x2 register of B (8x8, column-major)
  float c[4];     // the accumulator fragment
};
inline void mma_m16n8k8(float d[4], const MmaK8Operands& in, const char* f, int l) {
  detail::warp_collective(detail::WarpOp::kMmaK8, 0xffffffffu, &in, d, sizeof(MmaK8Operands), 0,
                          32, f, l);
}

// The architecture whose code path the emulated kernels take where the device code differs by
// architecture (the mma wrapper: below 80 it issues sm_75's two m16n8k8 instead of one m16n8k16).
// SIMT_ARCH=75 in the environment sets it for a whole run; the default is 80. The launch limits
// stay sm_75's either way.
int emulated_arch();
void set_emulated_arch(int sm);  // faults below 75: there is no mma.sync to emulate

inline unsigned ballot(detail::WarpOp op, unsigned mask, int pred, const char* f, int l) {
  unsigned out = 0;
  detail::warp_collective(op, mask, &pred, &out, sizeof(int), 0, 32, f, l);
  return out;
}

}  // namespace simt

// ---- the CUDA names, as kernels use them ------------------------------------------------------
// cuda_runtime_api.h brought the qualifiers as attributes for nvcc's front end; on the host they
// mean nothing, except __shared__: per-block storage. Blocks of one OS thread run one at a time,
// so a function-local static per OS thread is exactly one block's shared memory. To be poisoned
// before each block like dynamic shared memory, the arrays must be found, but a prefix macro cannot
// name the array it precedes (and GCC drops section attributes on statics in templates). So each
// declaration also sets a marker, simt_shared_mark_<line>, in the same function: at the first
// launch the scheduler finds in the executable's symbol table the thread-local statics of every
// function that has a marker, and before each block it refills the arrays of the functions whose
// markers were set since (simt_static_shared.cpp). As a statement, the marker also rejects
// __shared__ at namespace scope, which that search could not attribute to a function.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __noinline__
#define __global__
#define __device__
#define __host__
#define SIMT_CAT2_(a, b) a##b
#define SIMT_CAT_(a, b) SIMT_CAT2_(a, b)
#define __shared__                                                                           \
  [[maybe_unused]] static thread_local volatile char SIMT_CAT_(simt_shared_mark_, __LINE__); \
  SIMT_CAT_(simt_shared_mark_, __LINE__) = 1;                                                \
  static thread_local
#define __constant__ static
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)

#define threadIdx (::simt::detail::thread_idx())
#define blockIdx (::simt::detail::block_idx())
#define blockDim (::simt::detail::block_dim())
#define gridDim (::simt::detail::grid_dim())
constexpr int warpSize = 32;

#define __syncthreads() ::simt::detail::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::simt::detail::simt_syncwarp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(mask, var, ...) \
  ::simt::shfl_call(::simt::detail::WarpOp::kShflIdx, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(mask, var, ...) \
  ::simt::shfl_call(::simt::detail::WarpOp::kShflUp, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(mask, var, ...) \
  ::simt::shfl_call(::simt::detail::WarpOp::kShflDown, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(mask, var, ...) \
  ::simt::shfl_call(::simt::detail::WarpOp::kShflXor, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, pred) \
  ::simt::ballot(::simt::detail::WarpOp::kBallot, mask, (pred) ? 1 : 0, __FILE__, __LINE__)
#define __any_sync(mask, pred) \
  ((int)::simt::ballot(::simt::detail::WarpOp::kAny, mask, (pred) ? 1 : 0, __FILE__, __LINE__))
#define __all_sync(mask, pred) \
  ((int)::simt::ballot(::simt::detail::WarpOp::kAll, mask, (pred) ? 1 : 0, __FILE__, __LINE__))

namespace simt {
namespace detail {
inline void simt_syncwarp(const char* f, int l, unsigned mask = 0xffffffffu) {
  warp_collective(WarpOp::kSync, mask, nullptr, nullptr, 0, 0, 32, f, l);
}
}  // namespace detail
template <class T>
T shfl_call(detail::WarpOp op, unsigned mask, T var, const char* f, int l, int arg,
            int width = 32) {
  return shfl(op, mask, var, arg, width, f, l);
}
}  // namespace simt

// ---- atomics: real atomics, so blocks could one day run on several OS threads -------------------
template <class T>
inline T simt_atomic_rmw_int(T* p, T v, int op) {
  switch (op) {
    case 0: return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
    case 1: return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
    default: return 0;
  }
}
inline int atomicAdd(int* p, int v) { return simt_atomic_rmw_int(p, v, 0); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return simt_atomic_rmw_int(p, v, 0); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return simt_atomic_rmw_int(p, v, 0);
}
inline int atomicExch(int* p, int v) { return simt_atomic_rmw_int(p, v, 1); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return simt_atomic_rmw_int(p, v, 1); }
template <class T>
inline T atomicCAS(T* p, T compare, T val) {
  __atomic_compare_exchange_n(p, &compare, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;  // holds the old value either way
}
template <class T, class F>
inline T simt_atomic_float(T* p, F f) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float/double only");
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  U* u = reinterpret_cast<U*>(p);
  U old = __atomic_load_n(u, __ATOMIC_SEQ_CST), next;
  T o;
  do {
    std::memcpy(&o, &old, sizeof(T));
    T n = f(o);
    std::memcpy(&next, &n, sizeof(T));
  } while (!__atomic_compare_exchange_n(u, &old, next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
  return o;
}
inline float atomicAdd(float* p, float v) {
  return simt_atomic_float(p, [v](float o) { return o + v; });
}
inline double atomicAdd(double* p, double v) {
  return simt_atomic_float(p, [v](double o) { return o + v; });
}
inline float atomicExch(float* p, float v) {
  return simt_atomic_float(p, [v](float) { return v; });
}
template <class T>
inline T simt_atomic_minmax(T* p, T v, bool want_max) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while ((want_max ? v > old : v < old) &&
         !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}
inline int atomicMax(int* p, int v) { return simt_atomic_minmax(p, v, true); }
inline int atomicMin(int* p, int v) { return simt_atomic_minmax(p, v, false); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return simt_atomic_minmax(p, v, true); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return simt_atomic_minmax(p, v, false); }

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- math intrinsics we use: the fast variants are the accurate ones on the host ---------------
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
// Rounded products and sums that the compiler may not contract into an FMA (the host build is
// compiled without FMA contraction of its own, as these are on a GPU).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
template <class T>
inline T __ldg(const T* p) { return *p; }
// CUDA's device min/max overloads.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
