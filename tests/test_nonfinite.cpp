// The non-finite guard: the tiny model with one weight tensor scaled so that activations overflow
// (finite weights, so no load-time check can catch them). Latents that are not finite are reported;
// a decode that overflows fp16 but not fp32 is decoded again in fp32 (and the log says so); a decode
// that overflows fp32 too is reported; the CLI writes none of these, goes on, and exits 5.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/pipeline.h"

namespace fs = std::filesystem;
using namespace sdgen;

namespace {

const std::string kTiny = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";

// A copy of the tiny model (or of `from`, a copy made before) at `to` with the F32 tensor `name`
// multiplied by `factor`.
void scaled_copy(const std::string& to, const std::string& name, float factor, const std::string& from = kTiny) {
  std::ifstream in(from, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_len));
  const auto& t = header.at(name);
  ASSERT_EQ(t.at("dtype"), "F32");
  const size_t begin = 8 + header_len + t.at("data_offsets")[0].get<size_t>();
  const size_t end = 8 + header_len + t.at("data_offsets")[1].get<size_t>();
  for (size_t p = begin; p < end; p += 4) {
    float v;
    std::memcpy(&v, bytes.data() + p, 4);
    v *= factor;
    std::memcpy(&bytes[p], &v, 4);
  }
  std::ofstream(to, std::ios::binary) << bytes;
  fs::copy_file(kTiny + ".json", to + ".json", fs::copy_options::overwrite_existing);  // its config sidecar
}

GenerateParams params() {
  GenerateParams p;
  p.prompt = "a cat";
  p.steps = 2;
  p.width = p.height = 64;
  p.seed = 3;
  p.batch = 2;
  return p;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("sdgen_nonfinite_" + std::to_string(getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

const char* kVaeConvIn = "first_stage_model.decoder.conv_in.weight";

}  // namespace

TEST(NonFinite, HealthyModelHasNoReport) {
  Pipeline pipe(kTiny, DType::F16, Device::CPU);
  GeneratedBatch out = pipe.generate(params());
  ASSERT_EQ(out.not_finite.size(), 2u);
  EXPECT_EQ(out.not_finite[0], "");
  EXPECT_EQ(out.not_finite[1], "");
}

TEST(NonFinite, LatentsThatOverflowAreReported) {
  TempDir d;
  const std::string model = (d.path / "m.safetensors").string();
  scaled_copy(model, "model.diffusion_model.out.2.weight", 1e38f);
  Pipeline pipe(model, DType::F32, Device::CPU);
  GeneratedBatch out = pipe.generate(params());
  ASSERT_EQ(out.not_finite.size(), 2u);
  EXPECT_EQ(out.not_finite[0], "the final latents");
  EXPECT_EQ(out.not_finite[1], "the final latents");
}

// ×1e5 on the decoder's first convolution: its output passes fp16's 65504 but not fp32's range,
// and the GroupNorm after it brings the fp32 values back to size.
TEST(NonFinite, Fp16DecodeOverflowIsRetriedInFp32) {
  TempDir d;
  const std::string model = (d.path / "m.safetensors").string();
  scaled_copy(model, kVaeConvIn, 1e5f);
  std::vector<std::string> logs;
  Pipeline pipe(model, DType::F16, Device::CPU, [&](const std::string& m) { logs.push_back(m); });
  GeneratedBatch out = pipe.generate(params());
  ASSERT_EQ(out.not_finite.size(), 2u);
  EXPECT_EQ(out.not_finite[0], "") << "the fp32 retry did not give a finite image";
  int retries = 0;
  for (const std::string& m : logs) retries += m.find("not finite (NaN/Inf); decoding it again in fp32") != std::string::npos;
  EXPECT_EQ(retries, 2) << "the fp16 decode did not overflow, so nothing was retried";
  // The retried image is the fp32 decode of those latents: as the fp32 pipeline's, within fp16's error.
  Pipeline ref(model, DType::F32, Device::CPU);
  GeneratedBatch want = ref.generate(params());
  ASSERT_EQ(want.not_finite[0], "");
  int worst = 0;
  for (size_t k = 0; k < want.images[0].size(); ++k)
    worst = std::max(worst, std::abs((int)want.images[0][k] - (int)out.images[0][k]));
  EXPECT_LE(worst, 8);
}

// With --vae the fp32 retry decodes with that VAE, not the checkpoint's: a --vae file whose decoder
// overflows fp16 (conv_in ×1e5) and whose output is halved (conv_out ×0.5, which the checkpoint's
// VAE lacks), against the fp32 pipeline with the same --vae.
TEST(NonFinite, Fp16RetryDecodesWithTheGivenVae) {
  TempDir d;
  const std::string half = (d.path / "half.safetensors").string(), vae = (d.path / "vae.safetensors").string();
  scaled_copy(half, "first_stage_model.decoder.conv_out.weight", 0.5f);
  scaled_copy(vae, kVaeConvIn, 1e5f, half);
  ModelOptions o;
  o.vae = vae;
  std::vector<std::string> logs;
  Pipeline pipe(kTiny, DType::F16, Device::CPU, [&](const std::string& m) { logs.push_back(m); }, o);
  const GeneratedBatch out = pipe.generate(params());
  int retries = 0;
  for (const std::string& m : logs) retries += m.find("decoding it again in fp32") != std::string::npos;
  ASSERT_EQ(retries, 2) << "the fp16 decode did not overflow, so nothing was retried";
  Pipeline ref(kTiny, DType::F32, Device::CPU, nullptr, o);
  const GeneratedBatch want = ref.generate(params());
  int worst = 0;
  for (size_t k = 0; k < want.images[0].size(); ++k)
    worst = std::max(worst, std::abs((int)want.images[0][k] - (int)out.images[0][k]));
  EXPECT_LE(worst, 8) << "the retry decoded with another VAE than --vae's";
}

TEST(NonFinite, DecodeOverflowInFp32IsReported) {
  TempDir d;
  const std::string model = (d.path / "m.safetensors").string();
  scaled_copy(model, kVaeConvIn, 1e38f);
  for (DType dt : {DType::F32, DType::F16}) {
    Pipeline pipe(model, dt, Device::CPU);
    GeneratedBatch out = pipe.generate(params());
    ASSERT_EQ(out.not_finite.size(), 2u);
    EXPECT_EQ(out.not_finite[1], dt == DType::F32 ? "the decoded image" : "the decoded image (fp16, and again in fp32)");
  }
}

// The CLI: no file for such an image, one error line each, the other jobs still run, exit 5, and
// the manifest records only what was written.
TEST(NonFinite, CliWritesNoImageAndExits5) {
  TempDir d;
  const std::string bad = (d.path / "bad.safetensors").string();
  scaled_copy(bad, kVaeConvIn, 1e38f);
  std::ofstream(d.path / "p.txt") << "{\"prompt\": \"x\", \"model\": \"" << bad << "\"}\n"
                                  << "{\"prompt\": \"y\", \"model\": \"" << kTiny << "\"}\n";
  const std::string err = (d.path / "err.txt").string();
  const std::string cmd = "OMP_WAIT_POLICY=PASSIVE '" + std::string(SDGEN_CLI_PATH) +
                          "' --device cpu -W 64 -H 64 --steps 2 --seed 1 --prompt-file '" + (d.path / "p.txt").string() +
                          "' --manifest '" + (d.path / "m.jsonl").string() + "' --out '" + (d.path / "out").string() +
                          "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  std::ifstream e(err);
  std::stringstream ss;
  ss << e.rdbuf();
  EXPECT_EQ(WEXITSTATUS(status), 5) << ss.str();
  EXPECT_NE(ss.str().find("p.txt:1 image 0 (seed 1): the decoded image is not finite (NaN/Inf); not written"),
            std::string::npos)
      << ss.str();
  EXPECT_NE(ss.str().find("sd-gen: error: 1 image was not written, not finite: "), std::string::npos) << ss.str();
  int pngs = 0;
  for (auto& f : fs::directory_iterator(d.path / "out")) pngs += f.path().extension() == ".png";
  EXPECT_EQ(pngs, 1) << "line 2's image is written, line 1's is not";
  std::ifstream m(d.path / "m.jsonl");
  int records = 0;
  for (std::string line; std::getline(m, line);) records += nlohmann::json::parse(line)["origin"] == (d.path / "p.txt").string() + ":2";
  EXPECT_EQ(records, 1);
}
