// The whole text-to-image pipeline against diffusers' StableDiffusionPipeline (tests/data/golden/
// pipeline.safetensors, made by tests/reference/make_goldens.py with a DDIM scheduler in the SD v1.5
// configuration and a seeded CPU generator):
//   - in process: initial noise, final latents and uint8 images, from the LDM file and the diffusers
//     folder;
//   - the sd-gen binary itself (nothing injected): its PNGs equal diffusers' images within ±1 per
//     channel on >= 99.9% of pixels.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "pipeline/pipeline.h"

#include "stb_image_static.h"

namespace fs = std::filesystem;
using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;

struct GoldenRun {
  std::string name, prompt, negative;
  int steps;
  float guidance;
  uint64_t seed;
  int width, height, batch;
};
// As recorded in tests/data/golden/manifest.json (run0, run1: one prompt, 2 images each).
const GoldenRun kRun0{"run0", "a photo of a cat", "", 5, 7.5f, 42, 64, 64, 2};
const GoldenRun kRun1{"run1", "a red house by the lake, oil painting", "blurry, low quality", 7, 7.5f, 1234, 64, 64, 2};

const SafetensorsFile& golden() {
  static auto f = SafetensorsFile::open(kData + "/golden/pipeline.safetensors");
  return *f;
}
std::vector<float> golden_floats(const std::string& name) {
  const StTensorInfo* t = golden().find(name);
  EXPECT_NE(t, nullptr) << name;
  return t ? golden().to_floats(*t) : std::vector<float>{};
}
const uint8_t* golden_u8(const std::string& name, size_t* n) {
  const StTensorInfo* t = golden().find(name);
  EXPECT_NE(t, nullptr) << name;
  *n = (size_t)t->numel();
  return golden().data(*t);
}

// Share of channels within ±1 of the reference, and the largest difference.
std::pair<double, int> compare_u8(const uint8_t* a, const uint8_t* b, size_t n) {
  size_t ok = 0;
  int worst = 0;
  for (size_t i = 0; i < n; ++i) {
    int d = std::abs((int)a[i] - (int)b[i]);
    ok += d <= 1;
    worst = std::max(worst, d);
  }
  return {(double)ok / (double)n, worst};
}

GenerateParams params(const GoldenRun& r) {
  GenerateParams p;
  p.prompt = r.prompt;
  p.negative_prompt = r.negative;
  p.batch = r.batch;
  p.steps = r.steps;
  p.guidance = r.guidance;
  p.seed = r.seed;
  p.width = r.width;
  p.height = r.height;
  return p;
}

void check_against_golden(const GoldenRun& r, const GeneratedBatch& out) {
  // Latents: fp32 through 5-7 UNet calls; the references differ by float reassociation only.
  std::vector<float> ref = golden_floats(r.name + ".latents_final");
  ASSERT_EQ(ref.size(), out.latents.size());
  float max_ref = 0, max_err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_err = std::max(max_err, std::fabs(ref[i] - out.latents[i]));
  }
  EXPECT_LE(max_err, 1e-4f * std::max(1.0f, max_ref)) << r.name << " final latents";
  size_t n = 0;
  const uint8_t* img = golden_u8(r.name + ".image_uint8", &n);
  ASSERT_EQ(n, out.images.size() * out.images[0].size());
  for (size_t b = 0; b < out.images.size(); ++b) {
    auto [share, worst] = compare_u8(out.images[b].data(), img + b * out.images[b].size(), out.images[b].size());
    EXPECT_GE(share, 0.999) << r.name << " image " << b << " (worst " << worst << ")";
  }
}

}  // namespace

TEST(Pipeline, InitialNoiseIsDiffusersNoise) {
  std::vector<float> ref = golden_floats("run0.noise");
  std::vector<float> ours = Pipeline::initial_noise(42, 2, 8, 8);
  ASSERT_EQ(ref.size(), ours.size());
  // torch's vectorised Box–Muller rounds sin/cos/log differently from libm (tests/reference/README.md).
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(ours[i], ref[i], 1e-6f) << i;
}

TEST(Pipeline, LdmFileMatchesDiffusers) {
  Pipeline pipe(kData + "/tiny_sd/tiny_sd.safetensors", DType::F32, Device::CPU);
  check_against_golden(kRun0, pipe.generate(params(kRun0)));
  check_against_golden(kRun1, pipe.generate(params(kRun1)));
}

TEST(Pipeline, DiffusersFolderMatchesDiffusers) {
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  check_against_golden(kRun0, pipe.generate(params(kRun0)));
  check_against_golden(kRun1, pipe.generate(params(kRun1)));
}

TEST(Pipeline, CliWritesDiffusersImages) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_pipe_" + std::to_string(getpid()));
  fs::remove_all(dir);
  for (const GoldenRun* r : {&kRun0, &kRun1}) {
    const std::string out = (dir / r->name).string();
    std::string cmd = std::string("'") + SDGEN_CLI_PATH + "' --device cpu --quiet --model '" + kData +
                      "/tiny_sd/tiny_sd.safetensors' --prompt '" + r->prompt + "' --negative-prompt '" +
                      r->negative + "' --seed " + std::to_string(r->seed) + " --batch " +
                      std::to_string(r->batch) + " --steps " + std::to_string(r->steps) + " --sampler ddim -W " +
                      std::to_string(r->width) + " -H " + std::to_string(r->height) + " --out '" + out +
                      "' --name 'img-{i}'";
    int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
    size_t n = 0;
    const uint8_t* ref = golden_u8(r->name + ".image_uint8", &n);
    const size_t per = (size_t)r->width * r->height * 3;
    for (int b = 0; b < r->batch; ++b) {
      const std::string png = out + "/img-" + std::to_string(b) + ".png";
      int w = 0, h = 0, c = 0;
      unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
      ASSERT_NE(px, nullptr) << png;
      EXPECT_EQ(w, r->width);
      EXPECT_EQ(h, r->height);
      auto [share, worst] = compare_u8(px, ref + b * per, per);
      EXPECT_GE(share, 0.999) << png << " (worst " << worst << ")";
      stbi_image_free(px);
    }
  }
  fs::remove_all(dir);
}

// A prompt file as a batch script writes it: plain and JSON lines, per-line overrides of seed, batch,
// size, output folder and precision; one JSON object per image on stdout naming files that exist.
TEST(Pipeline, CliPromptFileWithOverrides) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_pf_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "prompts.txt")
      << "# a comment line\n"
      << "a photo of a cat\n"
      << "{\"prompt\": \"a red house\", \"seed\": 7, \"batch\": 2, \"width\": 128, \"out\": \""
      << (dir / "second").string() << "\", \"precision\": \"fp16\", \"name\": \"house-{i}\"}\n";
  const std::string cmd = std::string("'") + SDGEN_CLI_PATH + "' --device cpu --quiet --json --steps 2 -W 64 -H 64 --seed 3 --model '" +
                          kData + "/tiny_sd/diffusers' --prompt-file '" + (dir / "prompts.txt").string() +
                          "' --out '" + (dir / "first").string() + "' > '" + (dir / "out.jsonl").string() + "'";
  int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
  std::ifstream in(dir / "out.jsonl");
  std::vector<nlohmann::json> recs;
  for (std::string line; std::getline(in, line);) recs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0]["path"], (dir / "first" / "00000-3-0.png").string());
  EXPECT_EQ(recs[0]["seed"], 3);
  EXPECT_EQ(recs[1]["path"], (dir / "second" / "house-0.png").string());
  EXPECT_EQ(recs[2]["path"], (dir / "second" / "house-1.png").string());
  EXPECT_EQ(recs[1]["seed"], 7);
  EXPECT_EQ(recs[1]["settings"]["precision"], "fp16");
  EXPECT_EQ(recs[1]["settings"]["width"], 128);
  for (const auto& r : recs) {
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load(r["path"].get<std::string>().c_str(), &w, &h, &c, 3);
    ASSERT_NE(px, nullptr) << r["path"];
    EXPECT_EQ(w, r["settings"]["width"].get<int>());
    EXPECT_EQ(h, 64);
    stbi_image_free(px);
  }
  fs::remove_all(dir);
}

// Ctrl-C during sampling: exit code 130, one line saying so, and no file or created folder left.
TEST(Pipeline, CliInterruptExits130) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_int_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string err = (dir / "err.txt").string();
  // The signal is sent once sd-gen has logged its seed (models loaded, sampling under way); the
  // 400 steps at 512×512 take far longer than that. The wait loop is bounded (30 s).
  const std::string script =
      "'" + std::string(SDGEN_CLI_PATH) + "' --device cpu --model '" + kData +
      "/tiny_sd/tiny_sd.safetensors' --prompt 'a cat' --steps 400 -W 512 -H 512 --out '" +
      (dir / "out").string() + "' 2>'" + err + "' & pid=$!; i=0; while ! grep -q seed '" + err +
      "' && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; kill -INT $pid; wait $pid; echo $? > '" +
      (dir / "code.txt").string() + "'";
  std::ofstream(dir / "run.sh") << script << "\n";
  ASSERT_EQ(std::system(("bash '" + (dir / "run.sh").string() + "'").c_str()), 0);
  std::ifstream code_in(dir / "code.txt");
  int code = -1;
  code_in >> code;
  EXPECT_EQ(code, 130);
  std::ifstream err_in(err);
  std::string all((std::istreambuf_iterator<char>(err_in)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("interrupted by SIGINT"), std::string::npos) << all;
  EXPECT_FALSE(fs::exists(dir / "out"));
  fs::remove_all(dir);
}
