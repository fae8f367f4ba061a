// The VAE encoder on the emulated CUDA backend (its pad kernel, the convolutions through the cuDNN
// twin, the norms and the attention kernel, all run by the SIMT emulator) against diffusers, with
// the checks and bounds of the CPU test (tests/vae_encoder_golden.h): from the LDM single file and
// the diffusers folder, fp32 and fp16.
#include <gtest/gtest.h>

#include "../vae_encoder_golden.h"
#include "io/checkpoint.h"
#include "sdgen/backend.h"

using namespace sdgen;
using namespace sdgen::vae_golden;

namespace {

void run(const std::string& model, DType dtype, double (*tol)(double), const std::string& tag) {
  set_cuda_backend_factory(&make_cuda_backend);
  auto ck = Checkpoint::open(std::string(SDGEN_TEST_DATA) + model);
  VaeEncoder enc(*ck, ck->config().vae, dtype, Device::CUDA);
  check_encode(enc, tol, tag);
}

TEST(CudaEmulatedVaeEncoder, LdmFp32MatchesDiffusers) {
  run("/tiny_sd/tiny_sd.safetensors", DType::F32, tol_f32, "emulated ldm fp32");
}

TEST(CudaEmulatedVaeEncoder, DiffusersFp16CloseToDiffusers) {
  run("/tiny_sd/diffusers", DType::F16, tol_f16, "emulated diffusers fp16");
}

}  // namespace
