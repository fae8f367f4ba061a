// TAESD on the emulated CUDA backend (the convolutions through the cuDNN twin with the block's skip
// fused as the convolution's add, the ReLU / tanh / scale / upsample / add_channel kernels run by the
// SIMT emulator) against diffusers' AutoencoderTiny, with the checks and bounds of the CPU test
// (tests/taesd_golden.h): the diffusers folder and the original files, fp32 and fp16.
#include <gtest/gtest.h>

#include "../taesd_golden.h"
#include "sdgen/backend.h"

using namespace sdgen;
using namespace sdgen::taesd_golden;

namespace {

TEST(CudaEmulatedTaesd, FolderFp32MatchesDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  check_taesd(kFolder, DType::F32, Device::CUDA, "emulated folder fp32");
}

TEST(CudaEmulatedTaesd, OriginalFilesFp16CloseToDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  check_taesd(kDecoderFile, DType::F16, Device::CUDA, "emulated original files fp16");
}

}  // namespace
