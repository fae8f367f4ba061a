// The SD v1 noise schedule, bit-exact to diffusers' float32 tensors:
//   betas = torch.linspace(√β₀, √β₁, T, dtype=float32)² ; ᾱ = torch.cumprod(1 − β)
// torch's CPU linspace forms start + step·i (first half) / end − step·(T−1−i) (second half) with a
// fused multiply-add, and its cumprod accumulates in double, rounding each output to float; both
// are reproduced here so ᾱ matches to the bit (checked in tests/test_schedule_ddim.cpp).
#pragma once
#include <vector>

#include "sdgen/config.h"

namespace sdgen {

std::vector<float> sd_betas(const SchedulerConfig& cfg);
std::vector<float> sd_alphas_cumprod(const SchedulerConfig& cfg);

}  // namespace sdgen
