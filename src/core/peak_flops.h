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
  double bf16 = 0;   // FLOP/s, bf16 operands with fp32 accumulation
  std::string how;   // e.g. "H100 SXM: 989 / 67 TFLOP/s fp16 / fp32 dense (vendor datasheet)"
  double for_precision(DType precision) const {
    return precision == DType::BF16 ? bf16 : precision == DType::F16 ? fp16 : fp32;
  }
};

// The GPU whose name (as cudaGetDeviceProperties reports it, e.g. "NVIDIA H100 80GB HBM3") matches
// an entry of the table; nullopt when none does (MFU is then not reported).
std::optional<PeakFlops> gpu_peak_flops(const std::string& device_name);

// This process's CPUs: cores × fp32 lanes of the widest vector unit × 2 (an FMA is two FLOPs) ×
// FMA pipes per core × clock. fp16 is the fp32 figure: the CPU backend widens fp16 to fp32 and
// computes in fp32. bf16 is the rate of the CPU's bf16 dot products: AMX-BF16 tiles (1,024 FLOPs
// per cycle and core), else AVX512-BF16 (twice the fp32 FMA rate: two products summed per fp32
// lane), else the fp32 figure; a run that widens bf16 (no bf16 GEMM library) is measured against
// fp32's.
PeakFlops cpu_peak_flops();
// The same from a /proc/cpuinfo text ("flags", "model name"), a CPU count and a clock (tests).
PeakFlops cpu_peak_flops_of(const std::string& cpuinfo, int cores, double mhz, const std::string& clock_from);

}  // namespace sdgen
