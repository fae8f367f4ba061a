// Internal interface of the CPU backend: one function per op, grouped by family into the files of
// src/backend/cpu/. They take and return host fp32 tensors (cpu_backend.cpp converts fp16 in and
// out; only conv2d's input and weight and linear's weight reach the fast paths as stored, fp16
// included, and conv2d's output then has its input's dtype), trust ops.h's shape checks, and take
// `plain`: true runs the straightforward loops that are the numeric truth (double accumulators, no
// BLAS), false the fast paths (OpenBLAS, OpenMP).
#pragma once
#include <string>
#include <vector>

#include "sdgen/backend.h"
#include "sdgen/tensor.h"

// Hot loops of our own (not BLAS) are compiled for several x86 levels and picked at load time
// (GCC ifunc), since the build itself targets baseline x86-64 (SSE2).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SDGEN_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SDGEN_CPU_CLONES
#endif

namespace sdgen::cpu {

// linear.cpp
// A scratch buffer of at least n floats owned by the calling thread and kept across calls (OpenMP
// threads persist), so per-call column and score buffers do not page-fault fresh memory each time.
// Slot 0: conv columns (bf16 ones too) and a bf16 linear's rounded input, slot 1: attention scores,
// slot 2: widened fp16 weight panels or bf16 attention's probabilities, slot 3: an fp16 conv's
// output chunk before rounding.
float* thread_scratch(int slot, size_t n);
// A weight matrix B[N, K] (row n: output n's K inputs) as the fast GEMMs read it, fp32, fp16 or
// bf16. 16-bit rows are widened one panel at a time into the calling thread's scratch right before the
// sgemm that reads them, so an fp16 weight is never held whole in fp32: the model's weights stay
// half the memory, and the widening is a small share of each GEMM's work (1/M of it).
struct WeightRows {
  const void* data = nullptr;
  DType dtype = DType::F32;  // as stored: F32, F16 or BF16
  int64_t K = 0;
  // w [N, ...] as N rows of numel/N values.
  static WeightRows of(const Tensor& w);
  // Rows per sgemm call: all n for fp32 (read in place), a panel that fits the budget for 16 bits.
  int64_t panel_rows(int64_t n) const;
  // Rows [n0, n1) as contiguous fp32 (valid until this thread's next call).
  const float* rows(int64_t n0, int64_t n1) const;
};
// Sets OpenBLAS up for the fast paths (single-threaded). Called once when a CPU backend is made.
void configure_blas();
// Σ a[i]·b[i] accumulated in double: the plain paths' dot product.
double dot_d(const float* a, const float* b, int64_t n);
// C[M,N] = alpha · A[M,K] · B[N,K]ᵀ + beta · C, row-major with leading dims: one single-threaded
// OpenBLAS sgemm (callers thread around it).
void gemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// C[M,N] = alpha · A[M,K] · B[K,N] + beta · C.
void gemm_nn(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Fills each of the M rows of y[M, N] with bias[N] (or zeros when bias is null), serially.
void fill_rows(float* y, int64_t M, int64_t N, const float* bias);
// Output columns [n0, n1) of C[M, ·] (leading dim ldc): C = A[M,K] · B[n0:n1]ᵀ + beta · C, one
// weight panel per sgemm; single-threaded like gemm_nt.
void gemm_nt_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                  const WeightRows& B, float beta, float* C, int64_t ldc);
// C[M,N] = A[M,K] · B[N,K]ᵀ + bias, all contiguous, split over the OpenMP threads.
void gemm_nt_bias(int64_t M, int64_t N, int64_t K, const float* A, const WeightRows& B,
                  const float* bias, float* C);
// y = x·wᵀ + bias + residual (bias and residual may be undefined; residual has y's shape).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, bool plain);
// linear on oneDNN's bf16 GEMM (only when bf16_gemm_available()): w bf16, x bf16 or fp32 (rounded to
// bf16), bias and residual fp32; fp32 y.
Tensor linear_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual);

// bf16_gemm.cpp: bf16 GEMMs on oneDNN (AVX512-BF16 / AMX), where built in and the CPU has them.
// Whether the bf16 fast paths use gemm_nt_bf16 (else they widen to fp32 for OpenBLAS).
bool bf16_gemm_available();
// Tests: false makes bf16_gemm_available() false (the widening path) until set back; returns the
// previous setting.
bool set_bf16_gemm(bool on);
// What bf16 GEMMs run on: "oneDNN 2.6.3 (brg:avx512_core_bf16)" or why they are widened.
std::string bf16_gemm_description();
// C[M,N] = alpha · A[M,K] · B[N,K]ᵀ + bias[N] + beta · C, A and B bf16 row-major with leading dims,
// accumulated in fp32; C fp32 or bf16 (c_dtype, rounded once). bias may be null. Inside an OpenMP
// region it runs on the calling thread; outside, on all of them. Only when bf16_gemm_available().
void gemm_nt_bf16(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                  const uint16_t* B, int64_t ldb, const float* bias, float beta, void* C, DType c_dtype,
                  int64_t ldc);
// C[M,N] = alpha · A[M,K] · B[K,N] + beta · C, fp32 C, otherwise as gemm_nt_bf16.
void gemm_nn_bf16(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                  const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

// f16.cpp: fp16 <-> fp32 and bf16 <-> fp32 over arrays, serial; half.h's conversions, vectorized
// where the CPU can. widen/narrow pick by dtype (F16 or BF16).
void widen_f16(const uint16_t* src, float* dst, int64_t n);
void narrow_f16(const float* src, uint16_t* dst, int64_t n);
void widen_bf16(const uint16_t* src, float* dst, int64_t n);
void narrow_bf16(const float* src, uint16_t* dst, int64_t n);
void widen(DType dt, const uint16_t* src, float* dst, int64_t n);
void narrow(DType dt, const float* src, uint16_t* dst, int64_t n);

// conv.cpp
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride, int padding,
              bool plain);

// norm.cpp
Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                  bool fuse_silu, bool plain);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, bool plain);

// attention.cpp
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                 bool causal, bool plain);
Tensor softmax(const Tensor& x, bool plain);
// The fast attention on bf16 q, k, v as stored, on oneDNN's bf16 GEMMs (only when
// bf16_gemm_available()); fp32 output.
Tensor attention_bf16(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal);
// In-place softmax of one row of n values (max subtracted first); shared with attention.
void softmax_row(float* row, int64_t n);

// elementwise.cpp
Tensor unary(const Tensor& x, Backend::Unary op, bool plain);
Tensor geglu(const Tensor& x, bool plain);
Tensor add(const Tensor& a, const Tensor& b, bool plain);
Tensor add_channel(const Tensor& x, const Tensor& b, bool plain);
Tensor scale(const Tensor& x, float s, bool plain);
// fp32 <-> fp16 <-> bf16 (any dtype pair; same dtype gives a copy).
Tensor cast(const Tensor& x, DType dtype, bool plain);
// The pointwise functions themselves, written once so plain and fast agree bit for bit.
float silu_f(float x);
float quick_gelu_f(float x);
float gelu_f(float x);
float tanh_f(float x);

// layout.cpp (these move elements of any dtype without converting them)
Tensor upsample_nearest2x(const Tensor& x, bool plain);
Tensor concat_channels(const Tensor& a, const Tensor& b, bool plain);
Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table);
Tensor timestep_embedding(const std::vector<float>& t, int dim);  // fp32 [n, dim]

// pad.cpp: zero padding of an NHWC image (ops::pad), any dtype, elements copied unconverted.
Tensor pad(const Tensor& x, int top, int bottom, int left, int right, bool plain);

// image.cpp: the decoder's image as 8-bit pixels (ops::image_to_u8), x fp32.
void image_to_u8(const Tensor& x, Tensor& out);

// sampler.cpp: the sampler's ops (ops.h) on host fp32 tensors.
Tensor timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim);
Tensor scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times);
void sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table, const Tensor& noise,
                  Tensor& step, float guidance);
void inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise, const Tensor& table,
                   const Tensor& step);
void denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step, float guidance,
              Tensor& out);
Tensor guidance_rescale(const Tensor& eps, float guidance, float phi);
Tensor add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step, int64_t column,
                     int64_t row_offset);

}  // namespace sdgen::cpu
