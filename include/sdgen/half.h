// IEEE binary16 <-> binary32 conversion on the host, bit exact (round to nearest even, subnormals,
// inf/nan kept), and bfloat16 <-> binary32 (likewise). Used for 16-bit weights on load, 16-bit
// tensors on the CPU side and the test tables.
#pragma once
#include <cstdint>
#include <cstring>

namespace sdgen {

inline float half_bits_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FFu) << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7FFFFFFFu;
  if (absx >= 0x7F800000u) {  // inf or nan
    return (uint16_t)(sign | 0x7C00u | (absx > 0x7F800000u ? 0x200u | ((absx >> 13) & 0x3FFu) : 0));
  }
  if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (absx < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (absx < 0x33000000u) return (uint16_t)sign;  // < 2^-25 rounds to 0
    uint32_t e = absx >> 23;
    uint32_t man = (absx & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126 - e;  // 14 - (e - 127) + 13 - 1 ... aligns to 2^-24 units
    uint32_t q = man >> (shift);
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
    return (uint16_t)(sign | q);
  }
  uint32_t q = absx - 0x38000000u;  // rebias exponent 127 -> 15 (112 << 23)
  uint32_t rem = q & 0x1FFFu;
  q >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return (uint16_t)(sign | q);
}

// bfloat16 is the upper half of a float32.
inline float bf16_bits_to_float(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// fp32 -> bfloat16, round to nearest even on the 16 dropped bits (subnormals round like any other
// value: bf16 has fp32's exponent range). NaN stays NaN, made quiet (the dropped payload bits could
// be all of it: a signalling NaN truncated could read as inf); inf stays inf, overflow gives inf.
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

// Rounds a float to the nearest fp16 value (what storing it in an fp16 tensor does).
inline float round_to_half(float f) { return half_bits_to_float(float_to_half_bits(f)); }
// Rounds a float to the nearest bf16 value (what storing it in a bf16 tensor does).
inline float round_to_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

}  // namespace sdgen
