// PyTorch zip checkpoints (io/torch_checkpoint.h) against files torch.save wrote
// (tests/reference/make_ckpt_goldens.py): values and dtypes as torch holds them, the tiny model's
// .ckpt giving exactly its .safetensors twin's latents, and every refusal (a REDUCE of os.system,
// a class of the file's own, builtins.eval, truncation, compression, the legacy format, a
// non-contiguous tensor) one line with the model exit code and nothing executed.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "pipeline/pipeline.h"
#include "sdgen/error.h"
#include "test_helpers.h"

using namespace sdgen;
namespace fs = std::filesystem;

namespace {
const std::string kData = SDGEN_TEST_DATA;
const std::string kCkpt = kData + "/ckpt/";

using test_helpers::error_of;
}  // namespace

TEST(TorchCheckpoint, ReadsDtypesViewsAndParametersAsTorchSavedThem) {
  auto ck = open_torch_checkpoint(kCkpt + "dtypes.ckpt");
  auto want = SafetensorsFile::open(kCkpt + "dtypes_expected.safetensors");
  ASSERT_EQ(ck->tensors().size(), want->tensors().size());
  for (const StTensorInfo& w : want->tensors()) {
    SCOPED_TRACE(w.name);
    const StTensorInfo* got = ck->find(w.name);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->dtype, w.dtype);
    EXPECT_EQ(got->shape, w.shape);
    ASSERT_EQ(got->end - got->begin, w.end - w.begin);
    EXPECT_EQ(0, std::memcmp(ck->data(*got), want->data(w), w.end - w.begin)) << "bytes differ";
  }
  // A bare state dict (no "state_dict" entry) is the tensors themselves.
  auto plain = open_torch_checkpoint(kCkpt + "plain_state_dict.pt");
  ASSERT_NE(plain->find("w"), nullptr);
  EXPECT_EQ(plain->to_floats(*plain->find("w")), std::vector<float>(4, 1.0f));
}

// The LDM checkpoint as Lightning saves it: the same tensors as its safetensors twin, so the same
// latents to the bit, in process; and through the binary.
TEST(TorchCheckpoint, TinyModelCkptGivesItsSafetensorsTwinsImages) {
  GenerateParams p;
  p.prompt = "a photo of a cat";
  p.steps = 3;
  p.seed = 42;
  p.width = p.height = 64;
  const GeneratedBatch a = Pipeline(kData + "/tiny_sd/tiny_sd_fp16.ckpt", DType::F32, Device::CPU).generate(p);
  const GeneratedBatch b = Pipeline(kData + "/tiny_sd/tiny_sd_fp16.safetensors", DType::F32, Device::CPU).generate(p);
  EXPECT_EQ(a.latents, b.latents);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(Checkpoint::open(kData + "/tiny_sd/tiny_sd_fp16.ckpt")->name(), "tiny_sd_fp16");
}

TEST(TorchCheckpoint, RefusesWhatIsNotWeightsAndRunsNothing) {
  const std::string flag = "/tmp/sdgen_pickle_was_executed";
  fs::remove(flag);
  const std::pair<const char*, const char*> cases[] = {
      {"evil_reduce.ckpt", "names 'posix.system', which a state dict does not need; refused (nothing was executed)"},
      {"evil_class.ckpt", "names '__main__.Thing'"},
      {"eval_global.ckpt", "names '__builtin__.eval'"},  // protocol 2 names builtins so
      {"truncated.ckpt", "no zip end-of-directory record (truncated"},
      {"compressed.ckpt", "is compressed"},
      {"legacy.pt", "legacy (pre-1.6) format"},
      {"noncontiguous.ckpt", "tensor 'w' is not contiguous"},
  };
  for (const auto& [file, says] : cases) {
    const std::string msg = error_of([&] { Checkpoint::open(kCkpt + file); });
    EXPECT_NE(msg.find(says), std::string::npos) << file << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
  // Through the binary: the model exit code, one line.
  const std::string cmd = std::string("'") + SDGEN_CLI_PATH + "' --device cpu --quiet --prompt x --out /tmp/sdgen_ckpt_out --model '" +
                          kCkpt + "evil_reduce.ckpt' 2>/dev/null";
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
  EXPECT_FALSE(fs::exists(flag)) << "the pickle's payload ran";
}

// Hand-assembled pickles: the machine's own rules.
TEST(TorchCheckpoint, UnpicklerOpcodesAndLimits) {
  auto run = [](const std::string& bytes) {
    return unpickle_state_dict("test", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  };
  // {} : an empty state dict.
  EXPECT_TRUE(run(std::string("\x80\x02}.", 4)).empty());
  // INST (text-mode object creation) is not an opcode a state dict needs.
  std::string msg = error_of([&] { run(std::string("\x80\x02(i__main__\nX\n.", 15)); });
  EXPECT_NE(msg.find("pickle opcode 0x69 at byte 3"), std::string::npos) << msg;
  // GLOBAL of subprocess.Popen is refused at the GLOBAL, before any REDUCE.
  msg = error_of([&] { run(std::string("\x80\x02" "csubprocess\nPopen\n)R.", 22)); });
  EXPECT_NE(msg.find("'subprocess.Popen'"), std::string::npos) << msg;
  // No STOP: truncated.
  msg = error_of([&] { run(std::string("\x80\x02}", 3)); });
  EXPECT_NE(msg.find("ends without STOP"), std::string::npos) << msg;
  // A string longer than the bytes left.
  msg = error_of([&] { run(std::string("\x80\x02X\xff\xff\x00\x00" "ab.", 10)); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  // BINGET of a memo slot never stored.
  msg = error_of([&] { run(std::string("\x80\x02h\x05.", 5)); });
  EXPECT_NE(msg.find("memo index 5 never stored"), std::string::npos) << msg;
}

// A diffusers folder as older diffusers saved it: the VAE as diffusion_pytorch_model.bin. The same
// tensors as the safetensors folder's, so the same images to the bit.
TEST(TorchCheckpoint, DiffusersFolderWithBinWeights) {
  const fs::path root = fs::temp_directory_path() / ("sdgen_binfolder_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::copy(kData + "/tiny_sd/diffusers", root, fs::copy_options::recursive);
  fs::remove(root / "vae" / "diffusion_pytorch_model.safetensors");
  fs::copy_file(kCkpt + "vae_diffusion_pytorch_model.bin", root / "vae" / "diffusion_pytorch_model.bin");
  GenerateParams p;
  p.prompt = "a photo of a cat";
  p.steps = 2;
  p.seed = 3;
  p.width = p.height = 64;
  const GeneratedBatch a = Pipeline(root.string(), DType::F32, Device::CPU).generate(p);
  const GeneratedBatch b = Pipeline(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU).generate(p);
  EXPECT_EQ(a.images, b.images);
  fs::remove(root / "vae" / "diffusion_pytorch_model.bin");
  const std::string msg = error_of([&] { Checkpoint::open(root.string()); });
  EXPECT_NE(msg.find("or the older diffusion_pytorch_model.bin"), std::string::npos) << msg;
  fs::remove_all(root);
}
