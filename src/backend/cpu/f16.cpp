// fp16 <-> fp32 and bf16 <-> fp32 over arrays (the cast op, 16-bit conv activations and 16-bit
// weight panels in the GEMMs). The fp16 mode converts every activation an op reads or writes and every weight panel a
// GEMM reads; half.h's branchy scalar conversions made that a fifth of the VAE's time, where F16C's
// vcvtph2ps / vcvtps2ph convert 8 values per instruction. Both are exact IEEE conversions (round to
// nearest even, subnormals, inf): checked against half.h for every fp16 and every fp32 bit
// pattern, they agree except that vcvtph2ps quiets a signalling NaN (half.h keeps it signalling).
// CPUs without F16C use half.h itself.
#include "backend/cpu/cpu_backend.h"
#include "sdgen/half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SDGEN_HAVE_F16C_PATH 1
#endif

namespace sdgen::cpu {

namespace {

#ifdef SDGEN_HAVE_F16C_PATH
bool cpu_has_f16c() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return has;
}

__attribute__((target("avx,f16c"))) void widen_f16c(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

__attribute__((target("avx,f16c"))) void narrow_f16c(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i*)(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
#endif

}  // namespace

void widen_f16(const uint16_t* src, float* dst, int64_t n) {
#ifdef SDGEN_HAVE_F16C_PATH
  if (cpu_has_f16c()) return widen_f16c(src, dst, n);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = half_bits_to_float(src[i]);
}

void narrow_f16(const float* src, uint16_t* dst, int64_t n) {
#ifdef SDGEN_HAVE_F16C_PATH
  if (cpu_has_f16c()) return narrow_f16c(src, dst, n);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half_bits(src[i]);
}

// bf16 is the upper half of an fp32: widening is a shift, narrowing an integer round to nearest
// even (half.h's), both branch-free so the clones vectorize them. (AVX512-BF16's vcvtneps2bf16 is
// not used: it flushes subnormal inputs to zero, which half.h's rounding does not.)
SDGEN_CPU_CLONES void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_bits_to_float(src[i]);
}

SDGEN_CPU_CLONES void narrow_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16_bits(src[i]);
}

void widen(DType dt, const uint16_t* src, float* dst, int64_t n) {
  dt == DType::BF16 ? widen_bf16(src, dst, n) : widen_f16(src, dst, n);
}

void narrow(DType dt, const float* src, uint16_t* dst, int64_t n) {
  dt == DType::BF16 ? narrow_bf16(src, dst, n) : narrow_f16(src, dst, n);
}

}  // namespace sdgen::cpu
