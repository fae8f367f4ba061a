// Scalar float twins of the Cephes-based log and sincos that torch's x86-64 CPU normal_ kernel
// uses (Julien Pommier's AVX port, ATen/native/cpu/avx_mathfun.h), rounded exactly as the PyPI
// torch wheel computes them: GCC built that header with -mfma and contracted some of its mul/add
// pairs into FMAs, and these functions perform the same fused and unfused operations in the same
// order. They exist only so TorchCpuRandn can be bit-exact; they are not general-purpose math
// (valid for finite arguments, log for x > 0, sincos for |x| < 8192).
#pragma once

namespace sdgen::cephes {

// Natural logarithm, as torch's log256_ps.
float logf_torch_avx2(float x);

// Sine and cosine, as torch's sincos256_ps.
void sincosf_torch_avx2(float x, float* s, float* c);

}  // namespace sdgen::cephes
