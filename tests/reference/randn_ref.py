"""A plain-Python replica of torch.randn on a CPU generator (torch 2.x, ATen's CPUGeneratorImpl + normal_kernel),
used only to document how closely the documented algorithm reproduces torch (see manifest.json, randn).
It uses numpy's libm log/sin/cos, so for >= 16 values it is within ~2 ulp of torch, not exact; the
C++ generator (src/core/rng.cpp) is bit-exact because it follows torch's AVX2 kernel (Cephes log and
sincos from avx_mathfun.h, with the FMAs GCC formed) — test_rng.cpp checks that against the goldens."""
import math

import numpy as np


class MT19937:
    def __init__(self, seed):
        s = seed & 0xFFFFFFFF  # torch seeds mt19937 with the low 32 bits
        self.mt = [0] * 624
        self.mt[0] = s
        for i in range(1, 624):
            self.mt[i] = (1812433253 * (self.mt[i - 1] ^ (self.mt[i - 1] >> 30)) + i) & 0xFFFFFFFF
        self.idx = 624

    def _twist(self):
        mt = self.mt
        for i in range(624):
            y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7FFFFFFF)
            mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        self.idx = 0

    def __call__(self):
        if self.idx >= 624:
            self._twist()
        y = self.mt[self.idx]
        self.idx += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y


class TorchCpuGenerator:
    def __init__(self, seed):
        self.mt = MT19937(seed)
        self.cached_double_normal = None  # torch keeps the second Box-Muller value of the double path

    def uniform_f32(self):
        return (self.mt() & 0xFFFFFF) * 2.0 ** -24

    def uniform_f64(self):
        hi = self.mt()
        lo = self.mt()
        return (((hi << 32) | lo) & ((1 << 53) - 1)) * 2.0 ** -53

    def normal_f64(self):
        if self.cached_double_normal is not None:
            v, self.cached_double_normal = self.cached_double_normal, None
            return v
        u1 = self.uniform_f64()
        u2 = self.uniform_f64()
        r = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        self.cached_double_normal = r * math.sin(theta)
        return r * math.cos(theta)

    @staticmethod
    def _fill16(d, j0):
        u1 = np.float32(1.0) - d[j0:j0 + 8]
        u2 = d[j0 + 8:j0 + 16]
        radius = np.sqrt(np.float32(-2.0) * np.log(u1))
        # float(2*pi) * u2 in float32, as torch's AVX2/AVX512 kernel (normal_fill_16_AVX2) does; torch's scalar
        # fallback (ATEN_CPU_CAPABILITY=default) forms 2*pi*u2 in double and rounds once
        theta = np.float32(2.0 * math.pi) * u2
        d[j0:j0 + 8] = radius * np.cos(theta)
        d[j0 + 8:j0 + 16] = radius * np.sin(theta)

    def randn(self, n):
        """float32 array of n values, as torch.randn(n) would give (scalar, non-vectorised math)."""
        if n < 16:
            return np.array([self.normal_f64() for _ in range(n)], dtype=np.float64).astype(np.float32)
        d = np.array([self.uniform_f32() for _ in range(n)], dtype=np.float32)
        for i in range(0, n - 15, 16):
            self._fill16(d, i)
        if n % 16:
            d[n - 16:] = np.array([self.uniform_f32() for _ in range(16)], dtype=np.float32)
            self._fill16(d, n - 16)
        return d


def torch_cpu_randn(seed, n):
    return TorchCpuGenerator(seed).randn(n)
