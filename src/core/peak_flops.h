// Dense peak arithmetic rates, the denominator of MFU (model FLOPs utilization): per GPU by name,
// and for this machine's CPU derived from /proc/cpuinfo. Each figure says where it comes from, so
// a reported MFU can be checked.
#pragma once
#include <optional>
#include <string>

#include "sdgen/tensor.h"

namespace sdgen {

struct PeakFlops {
  double fp32 = 0;   // FLOP/s, fp32 math (no TF32 on GPUs)
  double fp16 = 0;   // FLOP/s, fp16 operands with fp32 accumulation (tensor cores on GPUs)
  std::string how;   // e.g. "H100 SXM: 989 / 67 TFLOP/s fp16 / fp32 dense (vendor datasheet)"
  // bf16 counts as fp16: tensor cores that have bf16 (A100 and later) run both at one rate, and the
  // CPU widens both to fp32.
  double for_precision(DType precision) const { return is_half_dtype(precision) ? fp16 : fp32; }
};

// The GPU whose name (as cudaGetDeviceProperties reports it, e.g. "NVIDIA H100 80GB HBM3") matches
// an entry of the table; nullopt when none does (MFU is then not reported).
std::optional<PeakFlops> gpu_peak_flops(const std::string& device_name);

// This process's CPUs: cores × fp32 lanes of the widest vector unit × 2 (an FMA is two FLOPs) ×
// FMA pipes per core × clock. fp16 is the fp32 figure: the CPU backend widens fp16 to fp32 and
// computes in fp32.
PeakFlops cpu_peak_flops();

}  // namespace sdgen
