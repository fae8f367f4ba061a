// CPU 2-D convolution, NHWC input, OHWI weight [Cout, K, K, Cin], zero padding. The fast path also
// takes fp16 and bf16 tensors as stored: the weight is widened inside the GEMM a panel at a time
// (WeightRows), the input while its columns are built and the output chunk by chunk, so no
// full-size fp32 copy of any of them is made (at 512×512 the VAE's would be 268 MB each, and
// allocating and faulting those in cost more than the conversions themselves).
// Plain: direct convolution, one double-accumulated dot product per (pixel, kernel tap).
// Fast: im2col + OpenBLAS GEMM. A column row is one output pixel's receptive field laid out as
// [kh][kw][cin], the same order as a weight row, so y[pixels, Cout] = col · wᵀ. In NHWC the kw taps
// of one kernel row are KW adjacent pixels, i.e. one contiguous run of KW·Cin floats, so building a
// row is K memcpys. Output pixels are processed in chunks (over the whole batch) so the column
// buffers stay a few MB however large the image (the VAE's 512×512×128 would need 1.2 GB at once).
// 1×1 stride-1 unpadded convolutions of fp32 input are a plain GEMM on x itself (fp16 input takes
// the column path, which widens it). (Tried: K·K shifted GEMMs on a padded copy instead of im2col;
// no faster here, within noise, on the UNet and VAE shapes.)
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "backend/cpu/cpu_backend.h"

namespace sdgen::cpu {

namespace {

// Column-buffer budget per thread in floats (8 MB): ≥ 180 output pixels even for 3×3×1280 fields,
// so the GEMM's repacking of the weight per chunk stays a few percent of its work.
constexpr int64_t kColBudget = int64_t(1) << 21;

struct ConvGeom {
  int64_t N, H, W, C, Co, K, Ho, Wo;
  int stride, pad;
};

// A bf16 element, so that the templates below tell it from fp16 (stored as uint16_t).
struct Bf16 {
  uint16_t bits;
};
const uint16_t* bits(const Bf16* p) { return reinterpret_cast<const uint16_t*>(p); }
uint16_t* bits(Bf16* p) { return reinterpret_cast<uint16_t*>(p); }

// n input values into fp32 columns: a copy, or a widening for 16-bit input.
void copy_run(float* dst, const float* src, int64_t n) {
  std::memcpy(dst, src, (size_t)n * sizeof(float));
}
void copy_run(float* dst, const uint16_t* src, int64_t n) { widen_f16(src, dst, n); }
void copy_run(float* dst, const Bf16* src, int64_t n) { widen_bf16(bits(src), dst, n); }
// bf16 input into bf16 columns, for oneDNN's bf16 GEMM (bf16_gemm.cpp): a copy.
void copy_run(Bf16* dst, const Bf16* src, int64_t n) { std::memcpy(dst, src, (size_t)n * sizeof(Bf16)); }

// Column rows [r0, r0 + rows) of the batch's output pixels into col[rows, K·K·C] (fp32, or bf16
// for bf16 input on oneDNN; zero bits are 0.0 in both).
template <class T, class Col>
void im2col_rows(const T* x, const ConvGeom& g, int64_t r0, int64_t rows, Col* col) {
  const int64_t KC = g.K * g.C, KKC = g.K * KC, HWo = g.Ho * g.Wo;
  for (int64_t r = r0; r < r0 + rows; ++r) {
    const int64_t n = r / HWo, oy = (r % HWo) / g.Wo, ox = r % g.Wo;
    Col* dst = col + (r - r0) * KKC;
    const int64_t ix0 = ox * g.stride - g.pad;
    for (int64_t kh = 0; kh < g.K; ++kh, dst += KC) {
      const int64_t iy = oy * g.stride - g.pad + kh;
      if (iy < 0 || iy >= g.H) {
        std::memset(dst, 0, (size_t)KC * sizeof(Col));
        continue;
      }
      const T* src_row = x + (n * g.H + iy) * g.W * g.C;
      if (ix0 >= 0 && ix0 + g.K <= g.W) {  // the common interior case: one run
        copy_run(dst, src_row + ix0 * g.C, KC);
        continue;
      }
      for (int64_t kw = 0; kw < g.K; ++kw) {
        const int64_t ix = ix0 + kw;
        Col* d = dst + kw * g.C;
        if (ix < 0 || ix >= g.W) {
          std::memset(d, 0, (size_t)g.C * sizeof(Col));
        } else {
          copy_run(d, src_row + ix * g.C, g.C);
        }
      }
    }
  }
}

// Where the GEMM writes the n fp32 output values that start at element `at` of y: into y itself
// for fp32 output, else into the thread's scratch, from which store_out rounds them into y.
float* gemm_out(float* y, int64_t at, int64_t n) { return y + at; }
float* gemm_out(uint16_t* y, int64_t at, int64_t n) { return thread_scratch(3, (size_t)n); }
float* gemm_out(Bf16* y, int64_t at, int64_t n) { return thread_scratch(3, (size_t)n); }
void store_out(const float* src, float* y, int64_t at, int64_t n) {}
void store_out(const float* src, uint16_t* y, int64_t at, int64_t n) { narrow_f16(src, y + at, n); }
void store_out(const float* src, Bf16* y, int64_t at, int64_t n) { narrow_bf16(src, bits(y + at), n); }

// Each thread takes chunks of output pixels and does im2col then a single-threaded GEMM on its own
// buffer: no barrier between the two steps, and the chunk is still in cache when the GEMM reads it.
template <class T>
void conv_fast(const T* x, const WeightRows& w, const float* bias, const ConvGeom& g, T* y) {
  const int64_t KKC = g.K * g.K * g.C, total = g.N * g.Ho * g.Wo;
  const int64_t threads = omp_get_max_threads();
  if (total < g.Co) {
    // Fewer output pixels than channels (the 8×8 and 16×16 levels): the weight is the big operand,
    // so build all columns (smaller than the weight) and split the output channels instead, so
    // that each thread packs only its share of the weight.
    float* col = thread_scratch(0, (size_t)(total * KKC));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < total; ++r) im2col_rows(x, g, r, 1, col + r * KKC);
    float* yf = gemm_out(y, 0, total * g.Co);
    gemm_nt_bias(total, g.Co, KKC, col, w, bias, yf);
    store_out(yf, y, 0, total * g.Co);
    return;
  }
  const int64_t even_share = (total + threads - 1) / threads;
  const int64_t chunk =
      std::max<int64_t>(1, std::min(even_share, std::max<int64_t>(64, kColBudget / KKC)));
  const int64_t chunks = (total + chunk - 1) / chunk;
#pragma omp parallel num_threads((int)std::min(threads, chunks))
  {
    float* col = thread_scratch(0, (size_t)(chunk * KKC));
#pragma omp for schedule(dynamic)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * chunk, rows = std::min(chunk, total - r0);
      im2col_rows(x, g, r0, rows, col);
      float* yc = gemm_out(y, r0 * g.Co, rows * g.Co);
      fill_rows(yc, rows, g.Co, bias);
      gemm_nt_rows(rows, 0, g.Co, KKC, col, KKC, w, bias ? 1.0f : 0.0f, yc, g.Co);
      store_out(yc, y, r0 * g.Co, rows * g.Co);
    }
  }
}

// bf16 on oneDNN: as conv_fast, but the columns stay bf16 (a copy of the input, no widening) and
// the GEMM writes bf16 output with the bias added, rounded once from its fp32 accumulators.
void conv_bf16(const Bf16* x, const Tensor& w, const float* bias, const ConvGeom& g, Bf16* y) {
  const int64_t KKC = g.K * g.K * g.C, total = g.N * g.Ho * g.Wo;
  const int64_t threads = omp_get_max_threads();
  const uint16_t* wb = w.data_as<uint16_t>();
  // Column buffers in bf16 elements, carved from the threads' fp32 scratch (half the floats).
  auto columns = [](int64_t n) { return reinterpret_cast<Bf16*>(thread_scratch(0, (size_t)(n + 1) / 2)); };
  if (g.K == 1 && g.stride == 1 && g.pad == 0) {  // x itself is the column matrix
    gemm_nt_bf16(total, g.Co, g.C, 1.0f, bits(x), g.C, wb, g.C, bias, 0.0f, y, DType::BF16, g.Co);
    return;
  }
  if (total < g.Co) {  // the weight dominates: one GEMM that oneDNN threads itself (see conv_fast)
    Bf16* col = columns(total * KKC);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < total; ++r) im2col_rows(x, g, r, 1, col + r * KKC);
    gemm_nt_bf16(total, g.Co, KKC, 1.0f, bits(col), KKC, wb, KKC, bias, 0.0f, y, DType::BF16, g.Co);
    return;
  }
  const int64_t even_share = (total + threads - 1) / threads;
  const int64_t chunk =
      std::max<int64_t>(1, std::min(even_share, std::max<int64_t>(64, 2 * kColBudget / KKC)));
  const int64_t chunks = (total + chunk - 1) / chunk;
#pragma omp parallel num_threads((int)std::min(threads, chunks))
  {
    Bf16* col = columns(chunk * KKC);
#pragma omp for schedule(dynamic)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * chunk, rows = std::min(chunk, total - r0);
      im2col_rows(x, g, r0, rows, col);
      gemm_nt_bf16(rows, g.Co, KKC, 1.0f, bits(col), KKC, wb, KKC, bias, 0.0f, y + r0 * g.Co, DType::BF16, g.Co);
    }
  }
}

void conv_plain(const float* x, const float* w, const float* bias, const ConvGeom& g, float* y) {
  const int64_t HWo = g.Ho * g.Wo;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < g.N * HWo; ++r) {
    const int64_t n = r / HWo, oy = (r % HWo) / g.Wo, ox = r % g.Wo;
    for (int64_t co = 0; co < g.Co; ++co) {
      double acc = bias ? bias[co] : 0.0;
      for (int64_t kh = 0; kh < g.K; ++kh) {
        const int64_t iy = oy * g.stride - g.pad + kh;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t kw = 0; kw < g.K; ++kw) {
          const int64_t ix = ox * g.stride - g.pad + kw;
          if (ix < 0 || ix >= g.W) continue;
          acc += dot_d(x + ((n * g.H + iy) * g.W + ix) * g.C,
                       w + ((co * g.K + kh) * g.K + kw) * g.C, g.C);
        }
      }
      y[r * g.Co + co] = (float)acc;
    }
  }
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride, int padding,
              bool plain) {
  ConvGeom g;
  g.N = x.dim(0), g.H = x.dim(1), g.W = x.dim(2), g.C = x.dim(3);
  g.Co = w.dim(0), g.K = w.dim(1);
  g.stride = stride, g.pad = padding;
  g.Ho = (g.H + 2 * padding - g.K) / stride + 1;
  g.Wo = (g.W + 2 * padding - g.K) / stride + 1;
  if (!plain && g.K == 1 && stride == 1 && padding == 0 && x.dtype() == DType::F32) {
    Tensor y = Tensor::empty({g.N, g.H, g.W, g.Co});
    gemm_nt_bias(g.N * g.H * g.W, g.Co, g.C, x.f32(), WeightRows::of(w),
                 bias.defined() ? bias.f32() : nullptr, y.f32());
    return y;
  }
  Tensor y = Tensor::empty({g.N, g.Ho, g.Wo, g.Co}, x.dtype());
  if (y.numel() == 0) return y;
  const float* bp = bias.defined() ? bias.f32() : nullptr;
  if (plain) {
    conv_plain(x.f32(), w.f32(), bp, g, y.f32());
  } else if (x.dtype() == DType::F16) {
    conv_fast(x.data_as<uint16_t>(), WeightRows::of(w), bp, g, y.data_as<uint16_t>());
  } else if (x.dtype() == DType::BF16 && w.dtype() == DType::BF16 && bf16_gemm_available()) {
    conv_bf16(x.data_as<Bf16>(), w, bp, g, y.data_as<Bf16>());
  } else if (x.dtype() == DType::BF16) {
    conv_fast(x.data_as<Bf16>(), WeightRows::of(w), bp, g, y.data_as<Bf16>());
  } else {
    conv_fast(x.f32(), WeightRows::of(w), bp, g, y.f32());
  }
  return y;
}

}  // namespace sdgen::cpu
