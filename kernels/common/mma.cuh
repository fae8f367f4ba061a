// Tensor-core matrix multiply-accumulate behind one small wrapper: D = A·B + C for one warp with
// A 16x16 fp16 (row-major), B 16x8 fp16 (column-major), C and D 16x8 fp32, in the register
// fragments of PTX's mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (and its bf16 form, sm_80+,
// mma_m16n8k16_bf16). sm_80+ issue that
// instruction; sm_75 issues two m16n8k8 halves (same fragments split along k). Emulated, the host
// branch issues one or the other by simt::emulated_arch() (SIMT_ARCH=75 for sm_75's halves); the
// emulator's twins (tests/simt/simt_collective.cpp) gather the fragments of all 32 lanes by each
// instruction's documented layout and multiply on the host. The fragment helpers below are the
// layout, in one place, for kernels that load fragments from memory.
#pragma once
#include <cstdint>

#include "cuda_compat.cuh"

namespace sdgen {
namespace kern {

struct MmaA { uint32_t x[4]; };  // 8 halves per lane
struct MmaB { uint32_t x[2]; };  // 4 halves per lane
struct MmaC { float x[4]; };     // 4 floats per lane

// PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"; g = lane / 4, t = lane % 4.
// A element i (0..7): row g (+8 if i in {2,3,6,7}), column 2t + (i & 1) (+8 if i >= 4).
__device__ __forceinline__ int mma_a_row(int lane, int i) { return (lane >> 2) + (((i >> 1) & 1) ? 8 : 0); }
__device__ __forceinline__ int mma_a_col(int lane, int i) { return (lane & 3) * 2 + (i & 1) + (i >= 4 ? 8 : 0); }
// B element i (0..3): row (k) 2t + (i & 1) (+8 if i >= 2), column (n) g.
__device__ __forceinline__ int mma_b_row(int lane, int i) { return (lane & 3) * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
__device__ __forceinline__ int mma_b_col(int lane, int) { return lane >> 2; }
// C/D element i (0..3): row g (+8 if i >= 2), column 2t + (i & 1).
__device__ __forceinline__ int mma_c_row(int lane, int i) { return (lane >> 2) + (i >= 2 ? 8 : 0); }
__device__ __forceinline__ int mma_c_col(int lane, int i) { return (lane & 3) * 2 + (i & 1); }

// Two 16-bit values (__half or __nv_bfloat16) as one register, the low one first.
template <class T>
__device__ __forceinline__ uint32_t pack_pair(T lo, T hi) {
  uint16_t a, b;
  memcpy(&a, &lo, 2);
  memcpy(&b, &hi, 2);
  return (uint32_t)a | ((uint32_t)b << 16);
}
__device__ __forceinline__ uint32_t pack_half2(__half lo, __half hi) { return pack_pair(lo, hi); }

// Fragments from a row-major A tile (element (r, c) at a[r * lda + c]) and a B tile stored with
// element (k, n) at b[n * ldb + k] (column-major, i.e. the rows of a [N, K] weight matrix).
__device__ __forceinline__ MmaA load_mma_a(const __half* a, int lda, int lane) {
  MmaA f;
  for (int r = 0; r < 4; ++r)
    f.x[r] = pack_half2(a[mma_a_row(lane, 2 * r) * lda + mma_a_col(lane, 2 * r)],
                        a[mma_a_row(lane, 2 * r + 1) * lda + mma_a_col(lane, 2 * r + 1)]);
  return f;
}
__device__ __forceinline__ MmaB load_mma_b(const __half* b, int ldb, int lane) {
  MmaB f;
  for (int r = 0; r < 2; ++r)
    f.x[r] = pack_half2(b[mma_b_col(lane, 2 * r) * ldb + mma_b_row(lane, 2 * r)],
                        b[mma_b_col(lane, 2 * r + 1) * ldb + mma_b_row(lane, 2 * r + 1)]);
  return f;
}

// d = a·b + c for A 16x8 in {a0, a1} and B 8x8 in b (mma.sync.m16n8k8, sm_75 and later), whose
// fragments are the first halves of m16n8k16's: mma_a_* with i < 4, mma_b_* with i < 2. All 32
// lanes of the warp must call it together (converged).
__device__ __forceinline__ void mma_m16n8k8(MmaC& d, uint32_t a0, uint32_t a1, uint32_t b,
                                            const MmaC& c) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%7,%8,%9,%10};\n"
      : "=f"(d.x[0]), "=f"(d.x[1]), "=f"(d.x[2]), "=f"(d.x[3])
      : "r"(a0), "r"(a1), "r"(b), "f"(c.x[0]), "f"(c.x[1]), "f"(c.x[2]), "f"(c.x[3]));
#elif !defined(__CUDACC__)
  simt::MmaK8Operands in;
  in.a[0] = a0;
  in.a[1] = a1;
  in.b = b;
  for (int i = 0; i < 4; ++i) in.c[i] = c.x[i];
  simt::mma_m16n8k8(d.x, in, __FILE__, __LINE__);
#endif
}

#if !defined(__CUDACC__)
// One lane's m16n8k16 fragments as the emulator's twins take them (fp16 and bf16 alike).
inline simt::MmaOperands mma_operands(const MmaA& a, const MmaB& b, const MmaC& c) {
  simt::MmaOperands in;
  for (int i = 0; i < 4; ++i) in.a[i] = a.x[i];
  for (int i = 0; i < 2; ++i) in.b[i] = b.x[i];
  for (int i = 0; i < 4; ++i) in.c[i] = c.x[i];
  return in;
}
#endif

// d = a·b + c; all 32 lanes of the warp must call it together (converged).
__device__ __forceinline__ void mma_m16n8k16(MmaC& d, const MmaA& a, const MmaB& b, const MmaC& c) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d.x[0]), "=f"(d.x[1]), "=f"(d.x[2]), "=f"(d.x[3])
      : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[0]), "r"(b.x[1]),
        "f"(c.x[0]), "f"(c.x[1]), "f"(c.x[2]), "f"(c.x[3]));
#elif defined(__CUDA_ARCH__)
  // sm_75: k = 0..7 lives in a.x[0..1] and b.x[0]; k = 8..15 in a.x[2..3] and b.x[1].
  float t[4];
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%7,%8,%9,%10};\n"
      : "=f"(t[0]), "=f"(t[1]), "=f"(t[2]), "=f"(t[3])
      : "r"(a.x[0]), "r"(a.x[1]), "r"(b.x[0]), "f"(c.x[0]), "f"(c.x[1]), "f"(c.x[2]), "f"(c.x[3]));
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%7,%8,%9,%10};\n"
      : "=f"(d.x[0]), "=f"(d.x[1]), "=f"(d.x[2]), "=f"(d.x[3])
      : "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[1]), "f"(t[0]), "f"(t[1]), "f"(t[2]), "f"(t[3]));
#elif !defined(__CUDACC__)
  if (simt::emulated_arch() >= 80) {
    simt::mma_m16n8k16(d.x, mma_operands(a, b, c), __FILE__, __LINE__);
  } else {
    // sm_75's split, register for register as in its asm above, so that the emulated twin of
    // m16n8k8 checks it.
    MmaC t;
    mma_m16n8k8(t, a.x[0], a.x[1], b.x[0], c);
    mma_m16n8k8(d, a.x[2], a.x[3], b.x[1], t);
  }
#endif
}

// d = a·b + c with bf16 A and B in the same fragments (mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32).
// sm_80 and later only: sm_75 has no bf16 tensor-core instruction, and callers check the device
// before they launch a kernel that issues it (there it traps).
__device__ __forceinline__ void mma_m16n8k16_bf16(MmaC& d, const MmaA& a, const MmaB& b, const MmaC& c) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d.x[0]), "=f"(d.x[1]), "=f"(d.x[2]), "=f"(d.x[3])
      : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[0]), "r"(b.x[1]),
        "f"(c.x[0]), "f"(c.x[1]), "f"(c.x[2]), "f"(c.x[3]));
#elif defined(__CUDA_ARCH__)
  (void)d, (void)a, (void)b, (void)c;
  __trap();
#elif !defined(__CUDACC__)
  simt::mma_m16n8k16_bf16(d.x, mma_operands(a, b, c), __FILE__, __LINE__);
#endif
}

// The instruction for the element type: fp16 or bf16.
__device__ __forceinline__ void mma_m16n8k16_t(const __half*, MmaC& d, const MmaA& a, const MmaB& b, const MmaC& c) {
  mma_m16n8k16(d, a, b, c);
}
__device__ __forceinline__ void mma_m16n8k16_t(const __nv_bfloat16*, MmaC& d, const MmaA& a, const MmaB& b,
                                               const MmaC& c) {
  mma_m16n8k16_bf16(d, a, b, c);
}

}  // namespace kern
}  // namespace sdgen
