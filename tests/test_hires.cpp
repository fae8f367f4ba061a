// The hires fix against its references (goldens of tests/reference/make_hires_goldens.py): the latent
// upscalers against torch.nn.functional.interpolate, and whole hires runs (a latent upscaler and
// lanczos, batch 2, non-square) against diffusers' StableDiffusionPipeline → upscale →
// StableDiffusionImg2ImgPipeline, in process (fp32 and mixed fp16) and through the sd-gen binary (the
// options, the PNG parameters), then the inputs sd-gen refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/options.h"
#include "io/safetensors.h"
#include "pipeline/hires.h"
#include "pipeline/latent_upscale.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "stb_image_static.h"
#include "test_helpers.h"

using namespace sdgen;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;

struct Golden {
  explicit Golden(const std::string& file) : f(SafetensorsFile::open(kData + "/golden/" + file)) {}
  std::unique_ptr<SafetensorsFile> f;
  nlohmann::json meta(const std::string& key) const { return nlohmann::json::parse(f->metadata().at(key)); }
  std::vector<float> floats(const std::string& key) const {
    const StTensorInfo* t = f->find(key);
    if (!t) throw std::runtime_error("golden tensor " + key + " missing");
    return f->to_floats(*t);
  }
  std::vector<uint8_t> bytes(const std::string& key) const {
    std::vector<uint8_t> out;
    for (float v : floats(key)) out.push_back((uint8_t)v);
    return out;
  }
};

HiresUpscaler upscaler_of(const std::string& word) {
  for (HiresUpscaler u : {HiresUpscaler::Latent, HiresUpscaler::LatentNearest, HiresUpscaler::LatentBicubic,
                          HiresUpscaler::Lanczos})
    if (word == hires_upscaler_name(u)) return u;
  throw std::runtime_error("unknown upscaler " + word);
}

GenerateParams params(const nlohmann::json& r) {
  GenerateParams p;
  p.prompt = r["prompt"];
  p.negative_prompt = r["negative_prompt"];
  p.batch = r["batch"];
  p.steps = r["steps"];
  p.guidance = r["guidance"];
  p.seed = r["seed"];
  p.width = r["width"];
  p.height = r["height"];
  p.sampler = parse_sampler_options(r["sampler"]);
  p.hires.width = hires_side(r["width"], r["scale"]);
  p.hires.height = hires_side(r["height"], r["scale"]);
  p.hires.steps = r["hires_steps"];
  p.hires.denoise = r["denoise"];
  p.hires.upscaler = upscaler_of(r["upscaler"]);
  return p;
}

struct Rule {
  double exact, within1;
  int worst;
};
constexpr Rule kF32{0.0, 0.999, 8};  // the text-to-image goldens' rule
constexpr Rule kF16{0.60, 0.99, 6};  // the fp16 rule (tests/test_pipeline.cpp derives it)

void expect_images(const GeneratedBatch& out, const std::vector<uint8_t>& ref, const Rule& rule, const std::string& what) {
  ASSERT_FALSE(out.images.empty()) << what;
  const size_t per = out.images[0].size();
  ASSERT_EQ(ref.size(), per * out.images.size()) << what;
  for (size_t b = 0; b < out.images.size(); ++b) {
    const test_helpers::ImageDiff d = test_helpers::compare_u8(out.images[b].data(), ref.data() + b * per, per);
    EXPECT_GE(d.exact, rule.exact) << what << " image " << b;
    EXPECT_GE(d.within1, rule.within1) << what << " image " << b;
    EXPECT_LE(d.worst, rule.worst) << what << " image " << b;
  }
}

}  // namespace

// Every mode on every shape (scales 1.5, 1.7 and 2, square and not, odd sides) within float
// rounding of torch's: the taps are torch's, the weights and the sums' order differ in rounding
// (≤ 7e-7 of max|ref|, which is about 6 here; bound 2e-6); a wrong tap, coordinate or cubic
// coefficient moves a value by 1e-2 or more.
TEST(LatentUpscale, MatchesTorchInterpolate) {
  const Golden g("latent_upscale.safetensors");
  const nlohmann::json cases = g.meta("cases");
  ASSERT_EQ(cases.size(), 6u);
  const std::pair<const char*, LatentUpscaleMode> modes[] = {
      {"latent", LatentUpscaleMode::Bilinear}, {"latent-nearest", LatentUpscaleMode::Nearest},
      {"latent-bicubic", LatentUpscaleMode::Bicubic}};
  for (const auto& c : cases) {
    const int i = c["case"];
    const auto s = c["shape"].get<std::vector<int>>();
    const int oh = c["out"][0], ow = c["out"][1];
    const std::vector<float> x = g.floats("case" + std::to_string(i) + ".input");
    for (const auto& [name, mode] : modes) {
      SCOPED_TRACE("case " + std::to_string(i) + " " + name);
      const std::vector<float> ref = g.floats("case" + std::to_string(i) + "." + name);
      const std::vector<float> out = upscale_latents(x, s[0], s[1], s[2], s[3], oh, ow, mode);
      ASSERT_EQ(out.size(), ref.size());
      float worst = 0, scale = 1;
      for (size_t k = 0; k < out.size(); ++k) {
        worst = std::max(worst, std::fabs(out[k] - ref[k]));
        scale = std::max(scale, std::fabs(ref[k]));
      }
      EXPECT_LE(worst, 2e-6f * scale);
    }
  }
}

TEST(LatentUpscale, SidesAsA1111) {
  EXPECT_EQ(hires_side(512, 2.0), 1024);
  EXPECT_EQ(hires_side(512, 1.5), 768);
  EXPECT_EQ(hires_side(512, 1.3), 665);  // int(665.6): refused by the CLI, not a multiple of 64
  EXPECT_EQ(hires_side(64, 1.7), 108);
  EXPECT_STREQ(hires_upscaler_a1111(HiresUpscaler::LatentNearest), "Latent (nearest)");
  EXPECT_STREQ(hires_upscaler_a1111(HiresUpscaler::LatentBicubic), "Latent (bicubic)");
}

// The second pass's latents follow diffusers' to float rounding as img2img's do (2e-5 of
// max(1, max|ref|), test_img2img's bound, after a first pass bounded the same way).
constexpr float kLatentRel = 2e-5f;

void expect_latents(const GeneratedBatch& out, const std::vector<float>& ref, int units, const std::string& key) {
  const size_t n = out.latents.size();
  ASSERT_EQ((int)out.unit_latents.size(), units);
  ASSERT_EQ(ref.size(), units * n);
  float worst_rel = 0;
  for (int u = 0; u < units; ++u) {
    float worst = 0, scale = 1;
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::fabs(out.unit_latents[u][i] - ref[u * n + i]));
      scale = std::max(scale, std::fabs(ref[u * n + i]));
    }
    EXPECT_LE(worst, kLatentRel * scale) << "unit " << u;
    worst_rel = std::max(worst_rel, worst / scale);
  }
  std::printf("[ hires ] %-24s latents after %d units of the second pass: max|d|/max(1,|ref|) %.3g\n", key.c_str(),
              units, worst_rel);
}

TEST(Hires, LatentsAndImagesMatchDiffusers) {
  const Golden g("hires.safetensors");
  const nlohmann::json runs = g.meta("runs");
  ASSERT_EQ(runs.size(), 2u);
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  for (const auto& r : runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    GenerateParams p = params(r);
    p.record_unit_latents = true;
    int last_done = -1, total = 0;
    const GeneratedBatch out = pipe.generate(p, [&](int d, int t) { last_done = d, total = t; });
    EXPECT_EQ(out.width, (int)r["hires_width"]);
    EXPECT_EQ(out.height, (int)r["hires_height"]);
    const int units = r["units"];
    EXPECT_EQ(last_done, total);  // the progress counts both passes
    EXPECT_GT(total, units);
    // Lanczos starts from 8-bit pictures: where the first pass's decode rounds a channel to the
    // other level (the fp32 rule allows 0.1% of them), the encode moves the latents by ~1e-3, so
    // its latents are held piece by piece (LanczosSecondPassMatchesDiffusers), its images here.
    if (r["upscaler"] != "lanczos") expect_latents(out, g.floats(key + ".latents_per_unit"), units, key);
    expect_images(out, g.bytes(key + ".image_uint8"), kF32, key);
  }
}

// The lanczos second pass from diffusers' own resized pictures: the batch encoded, one sample
// draw for the batch, then add_noise's draw, from a generator seeded again with the seed.
TEST(Hires, LanczosSecondPassMatchesDiffusers) {
  const Golden g("hires.safetensors");
  const nlohmann::json r = g.meta("runs")[1];
  ASSERT_EQ(r["upscaler"], "lanczos");
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  GenerateParams p = params(r);
  p.hires = {};
  p.width = r["hires_width"];
  p.height = r["hires_height"];
  p.steps = r["hires_steps"];
  p.strength = r["denoise"];
  const std::vector<uint8_t> px = g.bytes("lanczos_euler_a.pictures_uint8");
  const size_t per = (size_t)p.width * p.height * 3;
  ASSERT_EQ(px.size(), 2 * per);
  auto pictures = std::make_shared<std::vector<RgbImage>>(2);
  for (int b = 0; b < 2; ++b) {
    (*pictures)[b].width = p.width;
    (*pictures)[b].height = p.height;
    (*pictures)[b].pixels.assign(px.begin() + b * per, px.begin() + (b + 1) * per);
  }
  p.init_pictures = pictures;
  p.record_unit_latents = true;
  const GeneratedBatch out = pipe.generate(p);
  expect_latents(out, g.floats("lanczos_euler_a.latents_per_unit"), r["units"], "lanczos (second pass)");
  expect_images(out, g.bytes("lanczos_euler_a.image_uint8"), kF32, "lanczos (second pass)");
}

TEST(Hires, Fp16IsCloseToDiffusers) {
  const Golden g("hires.safetensors");
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F16, Device::CPU);
  for (const auto& r : g.meta("runs")) {
    const std::string key = r["key"];
    expect_images(pipe.generate(params(r)), g.bytes(key + ".image_uint8"), kF16, key + " fp16");
  }
}

// A denoise that leaves no step of the second pass is refused before the first pass runs.
TEST(Hires, NoStepLeftIsRefusedFirst) {
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  GenerateParams p;
  p.prompt = "x";
  p.width = p.height = 64;
  p.steps = 4;
  p.hires.width = p.hires.height = 128;
  p.hires.denoise = 0.2;  // int(4·0.2) = 0
  int steps_run = 0;
  EXPECT_THROW(pipe.generate(p, [&](int d, int) { steps_run = d; }), Error);
  EXPECT_EQ(steps_run, 0);
}

// ---- the CLI ----

// The latent run through the binary: its options give diffusers' images, the PNG carries A1111's
// hires labels and the first pass's size, as A1111 writes it; the lanczos run from a prompt file.
TEST(HiresCli, OptionsAndPromptFileGiveDiffusersImages) {
  const Golden g("hires.safetensors");
  const nlohmann::json runs = g.meta("runs");
  const fs::path dir = fs::temp_directory_path() / ("sdgen_hires_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string model = "--model '" + kData + "/tiny_sd/diffusers' ";
  auto check = [&](const nlohmann::json& r, const fs::path& out, const std::vector<std::string>& labels) {
    const std::vector<uint8_t> ref = g.bytes(r["key"].get<std::string>() + ".image_uint8");
    const int w = r["hires_width"], h = r["hires_height"];
    for (int b = 0; b < 2; ++b) {
      const fs::path png = out / ("img-" + std::to_string(b) + ".png");
      int pw = 0, ph = 0, c = 0;
      unsigned char* px = stbi_load(png.c_str(), &pw, &ph, &c, 3);
      ASSERT_NE(px, nullptr) << png;
      ASSERT_EQ(pw, w);
      ASSERT_EQ(ph, h);
      const test_helpers::ImageDiff d = test_helpers::compare_u8(px, ref.data() + (size_t)b * w * h * 3, (size_t)w * h * 3);
      stbi_image_free(px);
      EXPECT_GE(d.within1, 0.999) << png;
      const std::string text = test_helpers::slurp(png);
      for (const std::string& label : labels) EXPECT_NE(text.find(label), std::string::npos) << png << ": " << label;
    }
  };
  const nlohmann::json& lat = runs[0];  // latent (bilinear), DDIM, 64x128 → 128x256, hires steps 0
  const test_helpers::CliRun a = test_helpers::run_cli(
      model + "--prompt 'a red fox in the snow' --negative-prompt blurry --seed 21 --batch 2 --steps 6 -g 7.5 "
              "-W 64 -H 128 --sampler ddim --hires-scale 2 --hires-denoise 0.6 --hires-upscaler latent "
              "--name 'img-{i}' --out '" + (dir / "latent").string() + "'");
  ASSERT_EQ(a.code, 0) << a.err;
  check(lat, dir / "latent",
        {"Size: 64x128", "Denoising strength: 0.6", "Hires upscale: 2, Hires upscaler: Latent"});
  EXPECT_EQ(test_helpers::slurp(dir / "latent" / "img-0.png").find("Hires steps"), std::string::npos);

  const nlohmann::json& lz = runs[1];  // lanczos, Euler a, 128x64 → 256x128, hires steps 4
  const fs::path prompts = dir / "prompts.jsonl";
  std::ofstream(prompts) << nlohmann::json({{"prompt", "a castle on a hill"}, {"negative_prompt", "blurry"},
                                            {"seed", 23}, {"batch", 2}, {"steps", 5}, {"guidance", 5}, {"width", 128},
                                            {"height", 64}, {"sampler", "euler_a"}, {"hires_width", 256},
                                            {"hires_steps", 4}, {"hires_denoise", 0.75},
                                            {"hires_upscaler", "lanczos"}})
                                .dump()
                         << "\n";
  const test_helpers::CliRun b = test_helpers::run_cli(model + "--prompt-file '" + prompts.string() +
                                                       "' --name 'img-{i}' --out '" + (dir / "lanczos").string() + "'");
  ASSERT_EQ(b.code, 0) << b.err;
  check(lz, dir / "lanczos",
        {"Size: 128x64", "Denoising strength: 0.75", "Hires resize: 256x0, Hires steps: 4, Hires upscaler: Lanczos"});
  fs::remove_all(dir);
}

TEST(HiresCli, BadInputsAreOneLineAndWriteNothing) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_hires_bad_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string base = "--model '" + kData + "/tiny_sd/tiny_sd.safetensors' --prompt cat -W 64 -H 128 --steps 10 "
                           "--out '" + (dir / "out").string() + "' ";
  struct Case {
    std::string args, says;
  } cases[] = {
      {"--hires-scale 1.5", "the hires size 96x192 (from 64x128 by --hires-scale 1.5) must be multiples of 64"},
      {"--hires-scale 5", "--hires-scale must be between 0 and 4"},
      {"--hires-scale 2 --hires-width 128", "--hires-scale and --hires-width/--hires-height: give one of them"},
      {"--hires-width 128 --hires-height 128", "has another aspect ratio than 64x128"},
      {"--hires-width 100", "the hires size 100x200 (from 64x128) must be multiples of 64"},
      {"--hires-scale 2 --hires-denoise 1.5", "--hires-denoise must be between 0 and 1"},
      {"--hires-scale 2 --hires-denoise 0.05", "--hires-denoise 0.05 with 10 hires steps leaves no step to run"},
      {"--hires-scale 2 --hires-steps 4 --hires-denoise 0.2", "--hires-denoise 0.2 with 4 hires steps leaves no step"},
      {"--hires-scale 2 --hires-upscaler esrgan",
       "--hires-upscaler 'esrgan' is not one of latent, latent-nearest, latent-bicubic, lanczos"},
      {"--hires-scale 2 --init-image '" + kData + "/images/init_128x64.png'", "not with --init-image"},
  };
  for (const Case& c : cases) {
    const test_helpers::CliRun r = test_helpers::run_cli(base + c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir / "out")) << c.args;
  }
  fs::remove_all(dir);
}

// The memory check estimates the hires pass, whose size dominates: the refusal names it, and a
// limit that fits the first pass's size alone is not enough.
TEST(HiresCli, MemoryCheckCountsTheHiresPass) {
  const ModelConfig cfg;  // SD v1.x's
  cli::Job j;
  j.width = j.height = 512;
  cli::MemoryLimit limit;
  limit.source = "test";
  limit.bytes = 1;
  const std::string plain = cli::memory_refusal(cfg, limit, j, 1, DType::F16, Device::CUDA, false);
  j.hires_scale = 2;
  const std::string hires = cli::memory_refusal(cfg, limit, j, 1, DType::F16, Device::CUDA, false);
  EXPECT_NE(plain.find("512x512, batch 1"), std::string::npos) << plain;
  EXPECT_NE(hires.find("1024x1024, batch 1"), std::string::npos) << hires;
  // A limit between the two estimates: the text-to-image run fits, its hires run does not.
  limit.bytes = 1ull << 40;
  j.hires_scale = 0;
  for (uint64_t b = 1ull << 20; b < (1ull << 40); b += b / 8) {
    limit.bytes = b;
    if (cli::memory_refusal(cfg, limit, j, 1, DType::F16, Device::CUDA, false).empty()) break;
  }
  EXPECT_TRUE(cli::memory_refusal(cfg, limit, j, 1, DType::F16, Device::CUDA, false).empty());
  j.hires_scale = 2;
  EXPECT_FALSE(cli::memory_refusal(cfg, limit, j, 1, DType::F16, Device::CUDA, false).empty());
}
