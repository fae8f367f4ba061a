// --device cuda:N on the emulated CUDA backend (one emulated GPU, number 0): the backend selects
// the GPU it is given when it starts, and a number past the visible devices is the runtime error
// (exit 5) that says how many there are.
#include <gtest/gtest.h>

#include <string>

#include "backend/cuda/cuda_backend.h"
#include "cli/options.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

using namespace sdgen;

TEST(CudaDevice, NumberPastTheVisibleDevicesIsARuntimeError) {
  try {
    set_cuda_device_ordinal(1);
  } catch (const Error& e) {
    // This process already runs the shared backend (on GPU 0): switching is refused instead.
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("already runs on cuda:0, not cuda:1"), std::string::npos) << e.what();
    return;
  }
  try {
    make_cuda_backend();
    ADD_FAILURE() << "a backend started on GPU 1 of 1";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kRuntime);
    EXPECT_NE(std::string(e.what()).find("there is no CUDA device 1: 1 visible (0..0"), std::string::npos) << e.what();
  }
  set_cuda_backend_factory(&make_cuda_backend);
  try {
    cli::pick_device({cli::DeviceSpec::Cuda, 1});
    ADD_FAILURE() << "pick_device(cuda:1) with one GPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kRuntime);
    EXPECT_NE(std::string(e.what()).find("--device cuda:1: there is no CUDA device 1"), std::string::npos) << e.what();
  }
  set_cuda_device_ordinal(0);
  EXPECT_EQ(cli::pick_device({cli::DeviceSpec::Cuda, 0}), Device::CUDA);  // GPU 0 exists: the shared backend starts on it
  EXPECT_THROW(set_cuda_device_ordinal(1), Error);      // and stays on it
}

// A cuDNN older than 9.8 (whose convolution graphs the backend builds in 9.8's way) stops the
// backend at its start with one runtime error (exit 5) that names both versions; 9.8 itself and
// newer start.
TEST(CudaDevice, CudnnOlderThan98IsARuntimeError) {
  setenv("SIMT_CUDNN_VERSION", "90701", 1);
  try {
    make_cuda_backend();
    ADD_FAILURE() << "the backend started on cuDNN 9.7.1";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kRuntime);
    EXPECT_NE(std::string(e.what()).find("cuDNN 9.7.1 is loaded, the CUDA backend needs 9.8 or newer"),
              std::string::npos) << e.what();
  }
  unsetenv("SIMT_CUDNN_VERSION");
  // (the check itself: a whole second backend would replace the process's stream and hooks)
  EXPECT_NO_THROW(cuda::check_cudnn_version(90800));
  EXPECT_NO_THROW(cuda::check_cudnn_version(91000));
  EXPECT_THROW(cuda::check_cudnn_version(90799), Error);
}
