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

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "pipeline/pipeline.h"

#include "stb_image_static.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;

struct GoldenRun {
  std::string name;
  std::vector<std::string> prompts;  // one, or several in one batch (run2)
  std::string negative;
  int steps;
  float guidance;
  uint64_t seed;
  int width, height, batch;  // batch: images per prompt
  int images() const { return (int)prompts.size() * batch; }
};
// As recorded in tests/data/golden/manifest.json ("runs"), made by tests/reference/make_goldens.py.
const GoldenRun kRun0{"run0", {"a photo of a cat"}, "", 5, 7.5f, 42, 64, 64, 2};
const GoldenRun kRun1{"run1", {"a red house by the lake, oil painting"}, "blurry, low quality", 7, 7.5f, 1234, 64, 64, 2};
// Two prompts in one batch, guidance 5, wide (64 high, 128 wide).
const GoldenRun kRun2{"run2", {"a cat", "a dog"}, "", 4, 5.0f, 7, 128, 64, 1};
// Guidance 1 (no unconditional pass), tall (128 high, 64 wide), batch 3.
const GoldenRun kRun3{"run3", {"a lighthouse at dusk"}, "", 4, 1.0f, 99, 64, 128, 3};
// Two separate calls, as two lines of one prompt file: guidance 3.
const GoldenRun kRun4{"run4", {"a red fox in the snow"}, "blurry", 3, 3.0f, 11, 64, 64, 1};
const GoldenRun kRun5{"run5", {"a blue car on a bridge"}, "", 3, 3.0f, 12, 64, 64, 2};
const GoldenRun* const kInProcessRuns[] = {&kRun0, &kRun1, &kRun2, &kRun3, &kRun4, &kRun5};

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

// How an 8-bit image may differ from diffusers' and still come from correct code.
struct ImageRule {
  double min_exact;  // least share of channels equal to the reference
  double min_share;  // least share of channels within ±1
  int max_diff;      // largest difference of any channel
};
// fp32: we and the reference compute the same float32 expressions up to summation order, so the
// final latents differ by ≤ 4e-6 of their magnitude (below) and, through the decoder, the image
// values before rounding by ~1e-5 of their range [-1, 1], i.e. ~1.3e-3 of a level of 255. A channel
// lands on the other side of a rounding boundary (difference 1) only where the exact value is within
// that distance of a half level: ~0.3% of channels at most; never 2. Measured over runs 0-5, both
// checkpoint forms: ≥ 99.98% exact, worst 1.
constexpr ImageRule kImageF32{0.997, 1.0, 1};

void expect_image(const uint8_t* got, const uint8_t* ref, size_t n, const ImageRule& rule, const std::string& what) {
  const test_helpers::ImageDiff d = test_helpers::compare_u8(got, ref, n);
  EXPECT_GE(d.exact, rule.min_exact) << what << ": share of channels equal to diffusers'";
  EXPECT_GE(d.within1, rule.min_share) << what << ": share of channels within ±1";
  EXPECT_LE(d.worst, rule.max_diff) << what << ": largest channel difference";
  std::printf("[ image ] %s: %.2f%% exact, %.2f%% within ±1, worst %d\n", what.c_str(), 100.0 * d.exact,
              100.0 * d.within1, d.worst);
}

GenerateParams params(const GoldenRun& r) {
  GenerateParams p;
  if (r.prompts.size() == 1) p.prompt = r.prompts[0];
  else p.prompts = r.prompts;
  p.negative_prompt = r.negative;
  p.batch = r.batch;
  p.steps = r.steps;
  p.guidance = r.guidance;
  p.seed = r.seed;
  p.width = r.width;
  p.height = r.height;
  return p;
}

// Final latents: fp32 through 3-7 UNet calls of the tiny model. Both sides compute the same float32
// expressions up to summation order (≤ 3e-6 relative per UNet call, tests/test_models.cpp) and the
// DDIM update is a contraction (coefficients ≤ 1.1), so 7 steps accumulate at most ~2e-5 relative;
// measured: at most 3.5e-6 of max|ref| (run0). 2e-5 keeps a margin of ~6 and fails on any real
// slip (a wrong guidance or timestep changes the latents at the 1e-2 level).
constexpr float kLatentRelF32 = 2e-5f;

void check_against_golden(const GoldenRun& r, const GeneratedBatch& out) {
  std::vector<float> ref = golden_floats(r.name + ".latents_final");
  ASSERT_EQ(ref.size(), out.latents.size()) << r.name;
  float max_ref = 0, max_err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_err = std::max(max_err, std::fabs(ref[i] - out.latents[i]));
  }
  EXPECT_LE(max_err, kLatentRelF32 * std::max(1.0f, max_ref)) << r.name << " final latents";
  std::printf("[ latents ] %s: max|d| %.3g (max|ref| %.3g)\n", r.name.c_str(), max_err, max_ref);
  size_t n = 0;
  const uint8_t* img = golden_u8(r.name + ".image_uint8", &n);
  ASSERT_EQ((int)out.images.size(), r.images()) << r.name;
  ASSERT_EQ(n, out.images.size() * out.images[0].size()) << r.name;
  for (size_t b = 0; b < out.images.size(); ++b)
    expect_image(out.images[b].data(), img + b * out.images[b].size(), out.images[b].size(), kImageF32,
                 r.name + " image " + std::to_string(b));
}

}  // namespace

TEST(Pipeline, InitialNoiseIsDiffusersNoise) {
  std::vector<float> ref = golden_floats("run0.noise");
  std::vector<float> ours = Pipeline::initial_noise(42, 2, 8, 8);
  ASSERT_EQ(ref.size(), ours.size());
  // torch's vectorised Box–Muller rounds sin/cos/log differently from libm (tests/reference/README.md).
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(ours[i], ref[i], 1e-6f) << i;
}

// --rng philox through the pipeline's noise: a batch of 3 in batch mode is the first draw of one
// generator of 3·n values; per-image mode gives image i generator seed+i.
TEST(Pipeline, InitialNoiseSourcesAndModes) {
  const size_t n = 4 * 8 * 8;
  PhiloxRandn one(9);
  EXPECT_EQ(Pipeline::initial_noise(RngKind::Philox, SeedMode::Batch, 9, 3, 8, 8), one.randn(3 * n));
  EXPECT_EQ(Pipeline::initial_noise(RngKind::TorchCpu, SeedMode::Batch, 9, 3, 8, 8), Pipeline::initial_noise(9, 3, 8, 8));
  for (RngKind kind : {RngKind::TorchCpu, RngKind::Philox}) {
    const std::vector<float> per = Pipeline::initial_noise(kind, SeedMode::PerImage, 9, 3, 8, 8);
    for (int i = 0; i < 3; ++i) {
      const std::vector<float> alone = Pipeline::initial_noise(kind, SeedMode::Batch, 9 + i, 1, 8, 8);
      EXPECT_TRUE(std::equal(alone.begin(), alone.end(), per.begin() + i * n)) << i;
    }
  }
}

// --seed-mode per-image: image i of a batch is the image a batch of one with seed seed+i makes, for
// both noise sources; each image reports its own seed.
TEST(Pipeline, PerImageSeedModeRegeneratesEachImageAlone) {
  Pipeline pipe(kData + "/tiny_sd/tiny_sd.safetensors", DType::F32, Device::CPU);
  for (RngKind kind : {RngKind::TorchCpu, RngKind::Philox}) {
    GenerateParams p;
    p.prompt = "a red house";
    p.steps = 2;
    p.width = p.height = 64;
    p.seed = 20;
    p.batch = 3;
    p.rng = kind;
    p.seed_mode = SeedMode::PerImage;
    const GeneratedBatch all = pipe.generate(p);
    ASSERT_EQ(all.images.size(), 3u);
    EXPECT_EQ(all.seeds, (std::vector<uint64_t>{20, 21, 22}));
    const size_t per_latent = all.latents.size() / 3;
    for (int i = 0; i < 3; ++i) {
      GenerateParams q = p;
      q.batch = 1;
      q.seed = 20 + i;
      q.seed_mode = SeedMode::Batch;
      const GeneratedBatch alone = pipe.generate(q);
      EXPECT_EQ(alone.seeds, (std::vector<uint64_t>{20u + i}));
      // Same noise; the UNet's sums are blocked differently for a batch of 1 and of 3, so the
      // latents agree to summation order (the golden runs' bound, kLatentRelF32), not bit for bit.
      float max_ref = 0, max_err = 0;
      for (size_t k = 0; k < per_latent; ++k) {
        max_ref = std::max(max_ref, std::fabs(alone.latents[k]));
        max_err = std::max(max_err, std::fabs(alone.latents[k] - all.latents[i * per_latent + k]));
      }
      EXPECT_LE(max_err, kLatentRelF32 * std::max(1.0f, max_ref)) << rng_kind_name(kind) << " image " << i;
      expect_image(alone.images[0].data(), all.images[i].data(), all.images[i].size(), kImageF32,
                   std::string(rng_kind_name(kind)) + " image " + std::to_string(i));
    }
    // batch mode: one seed for all
    p.seed_mode = SeedMode::Batch;
    EXPECT_EQ(pipe.generate(p).seeds, (std::vector<uint64_t>{20, 20, 20}));
  }
}

TEST(Pipeline, LdmFileMatchesDiffusers) {
  Pipeline pipe(kData + "/tiny_sd/tiny_sd.safetensors", DType::F32, Device::CPU);
  for (const GoldenRun* r : kInProcessRuns) check_against_golden(*r, pipe.generate(params(*r)));
}

TEST(Pipeline, DiffusersFolderMatchesDiffusers) {
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  for (const GoldenRun* r : kInProcessRuns) check_against_golden(*r, pipe.generate(params(*r)));
}

// Mixed fp16 on the CPU (fp16 weights and activations between ops, fp32 math inside each op)
// against diffusers' fp32 images. Every stored activation is rounded to fp16 (relative 2^-11 ≈
// 4.9e-4); the model goldens measure the compounded error at ≤ 8e-3 of the output magnitude per
// model (tests/test_models.cpp). The decoder output's range is [-1, 1] = 255 levels, so its own
// share alone is up to ~5e-3·127.5 ≈ 0.65 level, plus what the latents carry in from 5-7 UNet
// calls (whose DDIM update contracts): the error per channel is mostly under one level, with a
// thin tail of a few levels where the decoder amplifies. Bound: ≥ 60% exact, ≥ 99% within ±1,
// worst ≤ 6 — about twice the measured tail, while a structural fp16 mistake (a wrong
// accumulation type, an overflow to inf, a dropped scale) moves most channels by many levels.
// Measured (LDM fp16 file and diffusers folder, runs 0 and 1): ≥ 74.9% exact, ≥ 99.75% within
// ±1, worst 3.
constexpr ImageRule kImageF16{0.60, 0.99, 6};

TEST(Pipeline, Fp16OnCpuIsCloseToDiffusers) {
  for (const char* form : {"/tiny_sd/tiny_sd_fp16.safetensors", "/tiny_sd/diffusers"}) {
    Pipeline pipe(kData + form, DType::F16, Device::CPU);
    for (const GoldenRun* r : {&kRun0, &kRun1}) {
      GeneratedBatch out = pipe.generate(params(*r));
      size_t n = 0;
      const uint8_t* img = golden_u8(r->name + ".image_uint8", &n);
      ASSERT_EQ(n, out.images.size() * out.images[0].size());
      for (size_t b = 0; b < out.images.size(); ++b)
        expect_image(out.images[b].data(), img + b * out.images[b].size(), out.images[b].size(), kImageF16,
                     std::string(form) + " " + r->name + " fp16 image " + std::to_string(b));
    }
  }
}

// ---- bf16 ----
// Against diffusers' own bf16 run (tests/data/golden/bf16.safetensors, made by
// tests/reference/make_bf16_goldens.py: StableDiffusionPipeline with torch_dtype=torch.bfloat16 on
// the CPU, runs 0 and 1, from the same noise). Neither side is the truth: both differ from the fp32
// images by their bf16 roundings (unit roundoff 2^-8, 8x fp16's, so the fp16 rule's ~0.65 level of
// decoder error alone becomes ~5 levels). The rule is derived from the reference's own spread, which
// the script measures (diffusers bf16 vs diffusers fp32, per channel, worst of the two runs):
// within ±4: 86.6%, within ±8: 98.3%, worst 16 (latents: max|d| 4.7% of max|ref|).
// sd-gen's bf16 rounds no more than diffusers' does (once per op output, like our fp16 path; fp32
// inside each op, and fp32 latents and sampler, where diffusers keeps bf16 latents and rounds
// inside ops too), so its own distance to fp32 is taken to be at most the reference's: at each
// level k a share p(k) of channels within ±k. Then, by the union bound:
//   - to diffusers' fp32 image: ≥ 1 - 2·(1 - p(k)) of channels within ±k (a factor-2 allowance on
//     the reference's miss share): within ±4 ≥ 73%, within ±8 ≥ 96%; worst ≤ 2·16;
//   - to diffusers' bf16 image (the difference of two such errors): within ±2k ≥ 1 - 2·(1 - p(k)):
//     within ±8 ≥ 73%, within ±16 ≥ 96%; worst ≤ 16 + 16.
// A structural bf16 slip (fp16 bits read as bf16, a truncating rounding, a lost scale) moves most
// channels by tens of levels. Latents: within 2 × 4.7% ≈ 0.1 of max|ref| of diffusers' bf16 ones.
struct SpreadRule {
  int k1;
  double share1;  // least share of channels within ±k1
  int k2;
  double share2;  // least share within ±k2
  int max_diff;
};
constexpr SpreadRule kBf16VsFp32{4, 0.73, 8, 0.96, 32};
constexpr SpreadRule kBf16VsBf16{8, 0.73, 16, 0.96, 32};
constexpr float kLatentRelBf16 = 0.1f;

const SafetensorsFile& bf16_golden() {
  static auto f = SafetensorsFile::open(kData + "/golden/bf16.safetensors");
  return *f;
}
const uint8_t* bf16_golden_u8(const std::string& name, size_t* n) {
  const StTensorInfo* t = bf16_golden().find(name);
  EXPECT_NE(t, nullptr) << name;
  *n = t ? (size_t)t->numel() : 0;
  return t ? bf16_golden().data(*t) : nullptr;
}

void expect_spread(const uint8_t* got, const uint8_t* ref, size_t n, const SpreadRule& rule, const std::string& what) {
  size_t in1 = 0, in2 = 0;
  int worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const int d = std::abs((int)got[i] - (int)ref[i]);
    in1 += d <= rule.k1;
    in2 += d <= rule.k2;
    worst = std::max(worst, d);
  }
  const double s1 = n ? (double)in1 / n : 0, s2 = n ? (double)in2 / n : 0;
  EXPECT_GE(s1, rule.share1) << what << ": share within ±" << rule.k1;
  EXPECT_GE(s2, rule.share2) << what << ": share within ±" << rule.k2;
  EXPECT_LE(worst, rule.max_diff) << what << ": largest channel difference";
  std::printf("[ image ] %s: %.2f%% within ±%d, %.2f%% within ±%d, worst %d\n", what.c_str(), 100 * s1, rule.k1,
              100 * s2, rule.k2, worst);
}

// One bf16 image (image b of run r) against both references.
void expect_bf16_image(const uint8_t* got, const GoldenRun& r, int b, const std::string& what) {
  size_t n = 0, n32 = 0;
  const uint8_t* ref = bf16_golden_u8(r.name + ".image_uint8", &n);
  const uint8_t* ref32 = golden_u8(r.name + ".image_uint8", &n32);
  const size_t per = (size_t)r.width * r.height * 3;
  ASSERT_EQ(n, per * r.images());
  ASSERT_EQ(n32, n);
  expect_spread(got, ref + b * per, per, kBf16VsBf16, what + " vs diffusers bf16");
  expect_spread(got, ref32 + b * per, per, kBf16VsFp32, what + " vs diffusers fp32");
}

TEST(Pipeline, Bf16OnCpuIsCloseToDiffusersBf16) {
  // The fp32 LDM file (rounded to bf16 on load) and the diffusers folder (fp32 files likewise).
  for (const char* form : {"/tiny_sd/tiny_sd.safetensors", "/tiny_sd/diffusers"}) {
    Pipeline pipe(kData + form, DType::BF16, Device::CPU);
    for (const GoldenRun* r : {&kRun0, &kRun1}) {
      const GeneratedBatch out = pipe.generate(params(*r));
      const StTensorInfo* lt = bf16_golden().find(r->name + ".latents_final");
      ASSERT_NE(lt, nullptr);
      const std::vector<float> ref = bf16_golden().to_floats(*lt);
      ASSERT_EQ(ref.size(), out.latents.size());
      float max_ref = 0, max_err = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        max_ref = std::max(max_ref, std::fabs(ref[i]));
        max_err = std::max(max_err, std::fabs(ref[i] - out.latents[i]));
      }
      EXPECT_LE(max_err, kLatentRelBf16 * max_ref) << form << " " << r->name << " bf16 final latents";
      std::printf("[ latents ] %s %s bf16: max|d| %.3g (max|ref| %.3g)\n", form, r->name.c_str(), max_err, max_ref);
      ASSERT_EQ((int)out.images.size(), r->images());
      for (size_t b = 0; b < out.images.size(); ++b)
        expect_bf16_image(out.images[b].data(), *r, (int)b, std::string(form) + " " + r->name + " bf16 image " + std::to_string(b));
    }
  }
}

// Runs the sd-gen binary; returns its exit code.
int run_cli(const std::string& args) {
  const std::string cmd = std::string("'") + SDGEN_CLI_PATH + "' --device cpu --quiet " + args;
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Compares the PNG at `png` with image `b` of golden run `r`.
void expect_png_is_golden(const std::string& png, const GoldenRun& r, int b) {
  size_t n = 0;
  const uint8_t* ref = golden_u8(r.name + ".image_uint8", &n);
  const size_t per = (size_t)r.width * r.height * 3;
  ASSERT_EQ(n, per * r.images()) << r.name;
  int w = 0, h = 0, c = 0;
  unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
  ASSERT_NE(px, nullptr) << png;
  EXPECT_EQ(w, r.width) << png;
  EXPECT_EQ(h, r.height) << png;
  if (w == r.width && h == r.height) expect_image(px, ref + b * per, per, kImageF32, png);
  stbi_image_free(px);
}

// The sd-gen binary itself (nothing injected), from both checkpoint forms: guidance 7.5 with and
// without a negative prompt, and guidance 1 (no unconditional pass) at a tall size with batch 3.
class PipelineCli : public ::testing::TestWithParam<const char*> {};

TEST_P(PipelineCli, WritesDiffusersImages) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_pipe_" + std::to_string(getpid()));
  fs::remove_all(dir);
  for (const GoldenRun* r : {&kRun0, &kRun1, &kRun3}) {
    const std::string out = (dir / r->name).string();
    char guidance[32];
    std::snprintf(guidance, sizeof guidance, "%g", r->guidance);
    run_cli("--model '" + kData + GetParam() + "' --prompt '" + r->prompts[0] + "' --negative-prompt '" +
            r->negative + "' --seed " + std::to_string(r->seed) + " --batch " + std::to_string(r->batch) +
            " --steps " + std::to_string(r->steps) + " --guidance " + guidance + " --sampler ddim -W " +
            std::to_string(r->width) + " -H " + std::to_string(r->height) + " --out '" + out +
            "' --name 'img-{i}'");
    for (int b = 0; b < r->batch; ++b) expect_png_is_golden(out + "/img-" + std::to_string(b) + ".png", *r, b);
  }
  fs::remove_all(dir);
}

// The binary in bf16 (run 0 from the LDM file): its PNGs against both references, and its --json
// record names the precision.
TEST(Pipeline, CliBf16WritesDiffusersBf16Images) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_bf16_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const GoldenRun& r = kRun0;
  run_cli("--json --precision bf16 --model '" + kData + "/tiny_sd/tiny_sd.safetensors' --prompt '" + r.prompts[0] +
          "' --seed " + std::to_string(r.seed) + " --batch " + std::to_string(r.batch) + " --steps " +
          std::to_string(r.steps) + " --guidance 7.5 --sampler ddim -W 64 -H 64 --out '" + (dir / "out").string() +
          "' --name 'img-{i}' > '" + (dir / "out.jsonl").string() + "'");
  std::ifstream in(dir / "out.jsonl");
  int k = 0;
  for (std::string line; std::getline(in, line); ++k) {
    const nlohmann::json rec = nlohmann::json::parse(line);
    EXPECT_EQ(rec["settings"]["precision"], "bf16");
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load(rec["path"].get<std::string>().c_str(), &w, &h, &c, 3);
    ASSERT_NE(px, nullptr);
    ASSERT_EQ(w * h, r.width * r.height);
    expect_bf16_image(px, r, k, "sd-gen --precision bf16 image " + std::to_string(k));
    stbi_image_free(px);
  }
  EXPECT_EQ(k, r.batch);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Forms, PipelineCli,
                         ::testing::Values("/tiny_sd/tiny_sd.safetensors", "/tiny_sd/diffusers"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.index == 0 ? "LdmFile" : "DiffusersFolder");
                         });

// Two different prompts in one prompt file, each line with its own seed, guidance and negative
// prompt: images come out in line order, each equal to diffusers' image for that line.
TEST(Pipeline, CliPromptFileKeepsLineOrder) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_order_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "prompts.txt")
      << "{\"prompt\": \"" << kRun4.prompts[0] << "\", \"negative_prompt\": \"" << kRun4.negative
      << "\", \"seed\": 11, \"guidance\": 3, \"steps\": 3, \"batch\": 1}\n"
      << "{\"prompt\": \"" << kRun5.prompts[0] << "\", \"seed\": 12, \"guidance\": 3, \"steps\": 3, \"batch\": 2}\n";
  run_cli("--json -W 64 -H 64 --model '" + kData + "/tiny_sd/diffusers' --prompt-file '" +
          (dir / "prompts.txt").string() + "' --out '" + (dir / "out").string() + "' > '" +
          (dir / "out.jsonl").string() + "'");
  std::ifstream in(dir / "out.jsonl");
  std::vector<nlohmann::json> recs;
  for (std::string line; std::getline(in, line);) recs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(recs.size(), 3u);
  const std::pair<const GoldenRun*, int> want[] = {{&kRun4, 0}, {&kRun5, 0}, {&kRun5, 1}};
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(recs[k]["prompt"], want[k].first->prompts[0]) << k;
    expect_png_is_golden(recs[k]["path"].get<std::string>(), *want[k].first, want[k].second);
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
  EXPECT_TRUE(recs[0]["peak_device_bytes"].is_null()) << "a CPU run has no device memory to report";
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

// --rng philox --seed-mode per-image from the command line: each image's own seed (seed+i) is in
// its --json line, its {seed} file name and its PNG metadata, with the mode and A1111's RNG name;
// and the second image is the one a batch of one with that seed gives.
TEST(Pipeline, CliPerImageSeedsInJsonNameAndMetadata) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_seedmode_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string common = "--json --steps 2 -W 64 -H 64 --prompt 'a red house' --rng philox --model '" +
                             kData + "/tiny_sd/tiny_sd.safetensors' --name 'img-{seed}-{i}' ";
  run_cli(common + "--seed 5 --batch 2 --seed-mode per-image --out '" + (dir / "a").string() + "' > '" +
          (dir / "a.jsonl").string() + "'");
  run_cli(common + "--seed 6 --out '" + (dir / "b").string() + "' > '" + (dir / "b.jsonl").string() + "'");
  std::ifstream in(dir / "a.jsonl");
  std::vector<nlohmann::json> recs;
  for (std::string line; std::getline(in, line);) recs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(recs.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(recs[i]["seed"], 5 + i);
    EXPECT_EQ(recs[i]["settings"]["rng"], "philox");
    EXPECT_EQ(recs[i]["settings"]["seed_mode"], "per-image");
    EXPECT_EQ(recs[i]["settings"]["base_seed"], 5);
    const std::string path = recs[i]["path"].get<std::string>();
    EXPECT_EQ(path, (dir / "a" / ("img-" + std::to_string(5 + i) + "-" + std::to_string(i) + ".png")).string());
    std::ifstream png(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(png)), std::istreambuf_iterator<char>());
    EXPECT_NE(bytes.find("Seed: " + std::to_string(5 + i) + ","), std::string::npos) << path;
    EXPECT_NE(bytes.find("RNG: NV, Seed mode: per-image"), std::string::npos) << path;
  }
  int w = 0, h = 0, c = 0, w2 = 0, h2 = 0;
  unsigned char* second = stbi_load((dir / "a" / "img-6-1.png").c_str(), &w, &h, &c, 3);
  unsigned char* alone = stbi_load((dir / "b" / "img-6-0.png").c_str(), &w2, &h2, &c, 3);
  ASSERT_NE(second, nullptr);
  ASSERT_NE(alone, nullptr);
  expect_image(alone, second, (size_t)w * h * 3, kImageF32, "per-image image 1 vs seed 6 alone");
  stbi_image_free(second);
  stbi_image_free(alone);
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
