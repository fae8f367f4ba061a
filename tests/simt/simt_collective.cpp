// Warp collectives once every lane of the mask has arrived: shuffles (the PTX shfl.sync rules for
// out-of-segment sources), votes, and the tensor-core mma.sync m16n8k16 (fp16 and bf16) and m16n8k8 with the
// fragment layouts of the PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point type",
// "Matrix Fragments for mma.m16n8k8").
#include <cuda_fp16.h>

#include <cstring>

#include "simt_internal.h"

namespace simt {
namespace detail {

namespace {

std::string lane_msg(const ThreadCtx& t, const char* what) {
  return std::string(what) + " (lane " + std::to_string(t.lane) + ", thread " + uint3_str(t.tid) +
         ")";
}

float half_to_float(uint16_t h) {
  __half_raw r;
  r.x = h;
  return __half2float(__half(r));
}

// bf16 is fp32's upper half.
float bf16_to_float(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The warp's matrices gathered from its lanes' fragments: A 16xK row-major halves, B Kx8, C 16x8.
struct MmaTiles {
  float A[16][16], B[16][8], C[16][8];
};

// D = A·B + C over k < K, scattered to each lane's D fragment (the C/D layout is the same for
// m16n8k16 and m16n8k8: row g (+8 for d2, d3), column 2t + (i & 1)).
void mma_finish(ThreadCtx* lanes, const MmaTiles& m, int K) {
  for (int l = 0; l < 32; ++l) {
    float* d = static_cast<float*>(lanes[l].dst);
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; ++i) {
      int row = i < 2 ? g : g + 8, col = t * 2 + (i & 1);
      float acc = m.C[row][col];
      for (int k = 0; k < K; ++k) acc += m.A[row][k] * m.B[k][col];
      d[i] = acc;
    }
  }
}

void gather_c(MmaTiles& m, int lane, const float c[4]) {
  int g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) m.C[i < 2 ? g : g + 8][t * 2 + (i & 1)] = c[i];
}

// A: 16x16 row-major halves (fp16, or bf16 with `bf16`), B: 16x8 (k x n), C/D: 16x8 floats, from the
// per-lane fragments; the layout is the same for both element types.
void mma_m16n8k16(ThreadCtx* lanes, bool bf16) {
  float (*const element)(uint16_t) = bf16 ? bf16_to_float : half_to_float;
  MmaTiles m;
  for (int l = 0; l < 32; ++l) {
    const MmaOperands& in = *static_cast<const MmaOperands*>(lanes[l].src);
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 8; ++i) {  // a_i is half (i & 1) of register i / 2
      uint16_t h = (uint16_t)(in.a[i / 2] >> (16 * (i & 1)));
      int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
      int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
      m.A[row][col] = element(h);
    }
    for (int i = 0; i < 4; ++i) {
      uint16_t h = (uint16_t)(in.b[i / 2] >> (16 * (i & 1)));
      int row = t * 2 + (i & 1) + (i >= 2 ? 8 : 0);
      m.B[row][g] = element(h);
    }
    gather_c(m, l, in.c);
  }
  mma_finish(lanes, m, 16);
}

// PTX ISA, "Matrix Fragments for mma.m16n8k8", .f16 A and B: A is 16x8 row-major, a0 and a1 at row
// g, a2 and a3 at row g + 8, columns 2t and 2t + 1; B is 8x8 (k x n), b0 and b1 at rows 2t and
// 2t + 1, column g.
void mma_m16n8k8(ThreadCtx* lanes) {
  MmaTiles m;
  for (int l = 0; l < 32; ++l) {
    const MmaK8Operands& in = *static_cast<const MmaK8Operands*>(lanes[l].src);
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; ++i) {
      uint16_t h = (uint16_t)(in.a[i / 2] >> (16 * (i & 1)));
      m.A[i < 2 ? g : g + 8][t * 2 + (i & 1)] = half_to_float(h);
    }
    for (int i = 0; i < 2; ++i) m.B[t * 2 + i][g] = half_to_float((uint16_t)(in.b >> (16 * i)));
    gather_c(m, l, in.c);
  }
  mma_finish(lanes, m, 8);
}

}  // namespace

void complete_collective(BlockCtx* b, int base, unsigned mask) {
  ThreadCtx* lanes = &b->threads[base];
  ThreadCtx& first = lanes[__builtin_ctz(mask)];
  WarpOp op = first.op;
  switch (op) {
    case WarpOp::kSync:
      return;
    case WarpOp::kBallot:
    case WarpOp::kAny:
    case WarpOp::kAll: {
      unsigned ballot = 0;
      for (int l = 0; l < 32; ++l)
        if ((mask >> l & 1u) && *static_cast<const int*>(lanes[l].src)) ballot |= 1u << l;
      unsigned r = op == WarpOp::kBallot ? ballot
                   : op == WarpOp::kAny  ? (ballot != 0)
                                         : (ballot == mask);
      for (int l = 0; l < 32; ++l)
        if (mask >> l & 1u) *static_cast<unsigned*>(lanes[l].dst) = r;
      return;
    }
    case WarpOp::kMma:
      if (mask != 0xffffffffu) fault("mma_m16n8k16 needs all 32 lanes (mask 0xffffffff)");
      mma_m16n8k16(lanes, false);
      return;
    case WarpOp::kMmaBf16:
      if (mask != 0xffffffffu) fault("mma_m16n8k16_bf16 needs all 32 lanes (mask 0xffffffff)");
      if (emulated_arch() < 80) fault("mma_m16n8k16_bf16 needs sm_80 or later (SIMT_ARCH is below 80)");
      mma_m16n8k16(lanes, true);
      return;
    case WarpOp::kMmaK8:
      if (mask != 0xffffffffu) fault("mma_m16n8k8 needs all 32 lanes (mask 0xffffffff)");
      mma_m16n8k8(lanes);
      return;
    default:
      break;
  }
  // Shuffles. Sources are read before any result is written: src and dst of a lane may alias
  // neither, but results must not feed other lanes' sources.
  unsigned char vals[32][16];
  size_t size = first.size;
  if (size > 16) fault("shuffle of a type larger than 16 bytes");
  for (int l = 0; l < 32; ++l)
    if (mask >> l & 1u) std::memcpy(vals[l], lanes[l].src, size);
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) continue;
    ThreadCtx& t = lanes[l];
    int w = t.width, seg = l & ~(w - 1), src = l;
    bool in_range = true;
    switch (op) {
      case WarpOp::kShflIdx: src = seg + (t.arg & (w - 1)); break;
      case WarpOp::kShflUp: src = l - t.arg; in_range = src >= seg; break;
      case WarpOp::kShflDown: src = l + t.arg; in_range = src < seg + w; break;
      // PTX bfly: valid when j <= maxLane (the segment's last lane); a j below the segment is
      // valid too (xor with bits above the width reaches the segments below).
      case WarpOp::kShflXor: src = l ^ t.arg; in_range = src < seg + w; break;
      default: break;
    }
    if (!in_range) src = l;  // PTX: an out-of-segment source leaves the lane's own value
    if (src < 0 || src >= 32 || !(mask >> src & 1u))
      fault(lane_msg(t, "shuffle reads a lane not named in the mask") + ": source lane " +
            std::to_string(src));
    std::memcpy(t.dst, vals[src], size);
  }
}

}  // namespace detail
}  // namespace simt
