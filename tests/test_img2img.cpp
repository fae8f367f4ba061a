// img2img against diffusers' StableDiffusionImg2ImgPipeline (goldens of
// tests/reference/make_img2img_goldens.py): strengths 0.3, 0.75 and 1.0 with DDIM, Euler ancestral and
// DPM++ 2M, batch 2, non-square sizes, a picture resized by the crop mode and two prompts in one call;
// in process (diffusers folder and LDM file, fp32 and mixed fp16) and through the sd-gen binary (the
// options, a prompt-file line, the PNG parameters), then the inputs sd-gen refuses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/image_read.h"
#include "io/image_resize.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "stb_image_static.h"
#include "test_helpers.h"

using namespace sdgen;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;

struct Golden {
  std::unique_ptr<SafetensorsFile> f = SafetensorsFile::open(kData + "/golden/img2img.safetensors");
  nlohmann::json runs = nlohmann::json::parse(f->metadata().at("runs"));
  std::vector<float> floats(const std::string& key) const {
    const StTensorInfo* t = f->find(key);
    if (!t) throw std::runtime_error("golden tensor " + key + " missing");
    return f->to_floats(*t);
  }
  std::vector<uint8_t> image(const std::string& key) const {
    std::vector<uint8_t> out;
    for (float v : floats(key + ".image_uint8")) out.push_back((uint8_t)v);
    return out;
  }
};

std::shared_ptr<const RgbImage> picture(const nlohmann::json& r) {
  ResizeMode mode;
  EXPECT_TRUE(parse_resize_mode(r["resize_mode"], &mode));
  return std::make_shared<const RgbImage>(
      fit_image(read_image(kData + "/images/" + r["picture"].get<std::string>(), "--init-image"), r["width"],
                r["height"], mode));
}

GenerateParams params(const nlohmann::json& r) {
  GenerateParams p;
  p.prompts = r["prompts"].get<std::vector<std::string>>();
  p.negative_prompt = r["negative_prompt"];
  p.batch = r["batch"];
  p.steps = r["steps"];
  p.guidance = r["guidance"];
  p.seed = r["seed"];
  p.width = r["width"];
  p.height = r["height"];
  p.sampler = parse_sampler_options(r["sampler"]);
  p.init_image = picture(r);
  p.strength = r["strength"];
  return p;
}

// The latents follow diffusers' to float rounding: the VAE encoder (≤ 1.5e-6 of its output's
// magnitude, test_vae_encoder), the plan from its begin step (SamplerPlans.Img2ImgMatchDiffusers:
// ≤ 2.7e-6) and the UNet calls (≤ 3e-6 each) as in the text-to-image goldens; 2e-5 of
// max(1, max|ref|), their bound, fails on a wrong begin step, add_noise mix, sample draw or
// scaling (each moves the latents at the 1e-2 level or more).
constexpr float kLatentRel = 2e-5f;

struct Rule {
  double exact, within1;
  int worst;
};
constexpr Rule kF32{0.0, 0.999, 8};    // the text-to-image goldens' rule
constexpr Rule kF16{0.60, 0.99, 6};    // the fp16 rule (tests/test_pipeline.cpp derives it)

void expect_images(const GeneratedBatch& out, const std::vector<uint8_t>& ref, const Rule& rule, const std::string& what) {
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

TEST(Img2Img, LatentsAndImagesMatchDiffusers) {
  const Golden g;
  ASSERT_EQ(g.runs.size(), 4u);
  for (const char* form : {"/tiny_sd/diffusers", "/tiny_sd/tiny_sd.safetensors"}) {
    Pipeline pipe(kData + form, DType::F32, Device::CPU);
    for (const auto& r : g.runs) {
      const std::string key = r["key"];
      // The folder's scheduler config says timestep_spacing "leading", which diffusers' from_config
      // gives every sampler; a single file has no such config (each class's default spacing), so
      // only DDIM, whose default is "leading", runs the same schedule from both.
      if (std::string(form) != "/tiny_sd/diffusers" && r["sampler"] != "ddim") continue;
      SCOPED_TRACE(std::string(form) + " " + key);
      GenerateParams p = params(r);
      p.record_unit_latents = true;
      const GeneratedBatch out = pipe.generate(p);
      const std::vector<float> ref = g.floats(key + ".latents_per_unit");
      const int units = r["units"];
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
      expect_images(out, g.image(key), kF32, key);
      std::printf("[ img2img ] %-20s %-30s latents after %d units: max|d|/max(1,|ref|) %.3g\n", key.c_str(), form,
                  units, worst_rel);
    }
  }
}

TEST(Img2Img, Fp16IsCloseToDiffusers) {
  const Golden g;
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F16, Device::CPU);
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    expect_images(pipe.generate(params(r)), g.image(key), kF16, key + " fp16");
  }
}

// What skipping steps means: the plan of a strength has the units of the steps left, so the
// progress counts only those.
TEST(Img2Img, StrengthSkipsTheFirstSteps) {
  EXPECT_EQ(img2img_begin(10, 0.3), 7);
  EXPECT_EQ(img2img_begin(10, 0.7), 3);  // 10·0.7 is 7.0 in double (6.9999998 in float)
  EXPECT_EQ(img2img_begin(25, 0.75), 7);  // int(18.75)
  EXPECT_EQ(img2img_begin(25, 1.0), 0);
  EXPECT_EQ(img2img_begin(9, 0.1), 9);   // none left: plan_sampler refuses
  const SchedulerConfig cfg;
  EXPECT_EQ(plan_sampler(parse_sampler_options("heun"), cfg, 10, 7).units, 2 * 3 - 1);
  EXPECT_THROW(plan_sampler(parse_sampler_options("euler"), cfg, 9, 9), Error);
}

// ---- the CLI ----

TEST(Img2ImgCli, OptionsAndPromptFileGiveDiffusersImages) {
  const Golden g;
  const fs::path dir = fs::temp_directory_path() / ("sdgen_img2img_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const nlohmann::json& r = g.runs[1];  // euler_a, strength 0.75, the crop mode, batch 2
  const std::string model = "--model '" + kData + "/tiny_sd/diffusers' ";
  auto check = [&](const fs::path& out, const std::string& what) {
    const std::vector<uint8_t> ref = g.image(r["key"]);
    for (int b = 0; b < 2; ++b) {
      const fs::path png = out / ("img-" + std::to_string(b) + ".png");
      int w = 0, h = 0, c = 0;
      unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
      ASSERT_NE(px, nullptr) << png;
      ASSERT_EQ(w, 64);
      ASSERT_EQ(h, 128);
      const test_helpers::ImageDiff d = test_helpers::compare_u8(px, ref.data() + b * 64 * 128 * 3, 64 * 128 * 3);
      stbi_image_free(px);
      EXPECT_GE(d.within1, 0.999) << what << " " << png;
      EXPECT_NE(test_helpers::slurp(png).find("Denoising strength: 0.75"), std::string::npos) << png;
    }
  };
  const std::string picture = kData + "/images/" + r["picture"].get<std::string>();
  const test_helpers::CliRun a = test_helpers::run_cli(
      model + "--prompt 'a castle on a hill' --negative-prompt blurry --seed 11 --batch 2 --steps 8 -g 5 "
              "-W 64 -H 128 --sampler euler_a --init-image '" + picture + "' --strength 0.75 --resize-mode crop "
              "--name 'img-{i}' --out '" + (dir / "cli").string() + "'");
  ASSERT_EQ(a.code, 0) << a.err;
  check(dir / "cli", "options");
  // The same from a prompt-file line.
  const fs::path prompts = dir / "prompts.jsonl";
  std::ofstream(prompts) << nlohmann::json({{"prompt", "a castle on a hill"}, {"negative_prompt", "blurry"},
                                            {"seed", 11}, {"batch", 2}, {"steps", 8}, {"guidance", 5}, {"width", 64},
                                            {"height", 128}, {"sampler", "euler_a"}, {"init_image", picture},
                                            {"strength", 0.75}, {"resize_mode", "crop"}})
                                .dump()
                         << "\n";
  const test_helpers::CliRun b = test_helpers::run_cli(model + "--prompt-file '" + prompts.string() +
                                                       "' --name 'img-{i}' --out '" + (dir / "file").string() + "'");
  ASSERT_EQ(b.code, 0) << b.err;
  check(dir / "file", "prompt file");
  fs::remove_all(dir);
}

TEST(Img2ImgCli, BadInputsAreOneLineAndWriteNothing) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_img2img_bad_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "text.png") << "not a picture";
  const std::string picture = kData + "/images/init_128x64.png";
  const std::string base = "--model '" + kData + "/tiny_sd/tiny_sd.safetensors' --prompt cat -W 64 -H 64 --steps 10 "
                           "--out '" + (dir / "out").string() + "' ";
  struct Case {
    std::string args, says;
  } cases[] = {
      {"--init-image '" + (dir / "missing.png").string() + "'", "--init-image " + (dir / "missing.png").string() + ": cannot open"},
      {"--init-image '" + (dir / "text.png").string() + "'", "not an image sd-gen can read"},
      {"--init-image '" + dir.string() + "'", "not a regular file"},
      {"--init-image '" + picture + "' --strength 1.5", "--strength must be between 0 and 1"},
      {"--init-image '" + picture + "' --strength 0.05", "--strength 0.05 with --steps 10 leaves no step to run"},
      {"--init-image '" + picture + "' --resize-mode stretch", "--resize-mode 'stretch' is not one of just, crop, fill"},
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
