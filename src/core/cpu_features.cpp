#include "core/cpu_features.h"

#include <cpuid.h>

#include <cstdint>
#include <cstring>

namespace sdgen {

namespace {

bool bit(uint32_t r, int b) { return (r >> b) & 1u; }

// XCR0: the register state the OS saves on a context switch; an extension whose state it does not
// save cannot be used even when cpuid lists it.
uint64_t xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  uint32_t a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const uint32_t max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4), std::memcpy(vendor + 4, &d, 4), std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  __get_cpuid(1, &a, &b, &c, &d);
  const uint32_t base_family = (a >> 8) & 0xf, ext_family = (a >> 20) & 0xff;
  const uint32_t base_model = (a >> 4) & 0xf, ext_model = (a >> 16) & 0xf;
  f.family = (int)(base_family == 0xf ? base_family + ext_family : base_family);
  f.model = (int)(base_family == 0x6 || base_family == 0xf ? (ext_model << 4) | base_model : base_model);
  const bool osxsave = bit(c, 27);
  const uint64_t xcr = osxsave ? xcr0() : 0;
  const bool ymm = (xcr & 0x6) == 0x6, zmm = ymm && (xcr & 0xe0) == 0xe0, tiles = (xcr & 0x60000) == 0x60000;
  f.avx = bit(c, 28) && ymm;
  f.fma = bit(c, 12) && ymm;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = bit(b, 5) && ymm;
    f.avx512f = bit(b, 16) && zmm;
    f.avx512dq = bit(b, 17) && zmm;
    f.avx512bw = bit(b, 30) && zmm;
    f.avx512vl = bit(b, 31) && zmm;
    f.avx512_fp16 = bit(d, 23) && zmm;
    f.amx_bf16 = bit(d, 22) && tiles;
    f.amx_tile = bit(d, 24) && tiles;
    const uint32_t sub_leaves = a;
    if (sub_leaves >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avx512_bf16 = bit(a, 5) && zmm;
      f.amx_fp16 = bit(a, 21) && tiles;
    }
  }
  char brand[49] = {};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (uint32_t leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002 + leaf, &a, &b, &c, &d);
      std::memcpy(brand + 16 * leaf, &a, 4), std::memcpy(brand + 16 * leaf + 4, &b, 4);
      std::memcpy(brand + 16 * leaf + 8, &c, 4), std::memcpy(brand + 16 * leaf + 12, &d, 4);
    }
  }
  f.model_name = brand;
  while (!f.model_name.empty() && f.model_name.back() == ' ') f.model_name.pop_back();
  while (!f.model_name.empty() && f.model_name.front() == ' ') f.model_name.erase(0, 1);
  return f;
}

}  // namespace

std::string CpuFeatures::extensions() const {
  std::string s;
  auto add = [&](bool has, const char* name) {
    if (has) s += (s.empty() ? "" : " ") + std::string(name);
  };
  add(avx, "AVX");
  add(avx2, "AVX2");
  add(fma, "FMA");
  add(avx512(), "AVX-512");
  add(avx512_bf16, "AVX512-BF16");
  add(avx512_fp16, "AVX512-FP16");
  add(amx_bf16, "AMX-BF16");
  add(amx_fp16, "AMX-FP16");
  return s.empty() ? "SSE" : s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace sdgen
