// img2img and inpainting whose pictures the tiny autoencoder encodes (--vae-tiny with an encoder),
// against diffusers' pipelines with vae=AutoencoderTiny (tests/reference/make_taesd_img2img_goldens.py):
// the encoder's latents taken as they are, no sample drawn, so the start noise is the generator's
// first draw; DDIM img2img at 0.6 with batch 2, Euler a inpainting at 0.75 with a regular model.
// And the hires fix's lanczos pass with TAESD: the first pass decoded by TAESD, the resized pictures
// encoded by TAESD (no draw), in process and through the binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/image_read.h"
#include "io/safetensors.h"
#include "pipeline/hires.h"
#include "pipeline/model_options.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "stb_image_static.h"
#include "test_helpers.h"

using namespace sdgen;

namespace {
const std::string kData = SDGEN_TEST_DATA;
namespace fs = std::filesystem;

std::vector<uint8_t> golden_bytes(const SafetensorsFile& g, const std::string& key) {
  std::vector<uint8_t> out;
  for (float v : g.to_floats(*g.find(key))) out.push_back((uint8_t)v);
  return out;
}

// The latents after every unit against the golden's: max|d| / max(1, max|ref|), the worst unit.
float worst_unit_error(const GeneratedBatch& out, const std::vector<float>& ref, int units) {
  const size_t n = out.latents.size();
  EXPECT_EQ((int)out.unit_latents.size(), units);
  EXPECT_EQ(ref.size(), units * n);
  if ((int)out.unit_latents.size() != units || ref.size() != units * n) return INFINITY;
  float worst_rel = 0;
  for (int u = 0; u < units; ++u) {
    float worst = 0, scale = 1;
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::fabs(out.unit_latents[u][i] - ref[u * n + i]));
      scale = std::max(scale, std::fabs(ref[u * n + i]));
    }
    worst_rel = std::max(worst_rel, worst / scale);
  }
  return worst_rel;
}

const nlohmann::json& hires_run(const nlohmann::json& runs) {
  for (const auto& r : runs)
    if (r["kind"] == "hires") return r;
  throw std::runtime_error("no hires run in the golden");
}
}  // namespace

TEST(TaesdImg2Img, LatentsAndImagesMatchDiffusers) {
  auto g = SafetensorsFile::open(kData + "/golden/taesd_img2img.safetensors");
  const nlohmann::json runs = nlohmann::json::parse(g->metadata().at("runs"));
  ASSERT_EQ(runs.size(), 3u);
  ModelOptions o;
  o.vae_tiny = kData + "/tiny_taesd";
  o.need_encoder = true;
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o);
  for (const auto& r : runs) {
    if (r["kind"] == "hires") continue;  // TaesdHires
    const std::string key = r["key"];
    SCOPED_TRACE(key);
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
    p.strength = r["strength"];
    p.init_image = std::make_shared<const RgbImage>(read_image(kData + "/images/" + r["picture"].get<std::string>(), "x"));
    if (!r["mask"].is_null())
      p.mask = std::make_shared<const RgbImage>(read_image(kData + "/images/" + r["mask"].get<std::string>(), "x"));
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    const float worst_rel = worst_unit_error(out, g->to_floats(*g->find(key + ".latents_per_unit")), r["units"]);
    const int units = r["units"];
    // The bound of the other img2img goldens: a drawn sample or a wrong scale moves them by 1e-2 or more.
    EXPECT_LE(worst_rel, 2e-5f);
    const std::vector<uint8_t> img = golden_bytes(*g, key + ".image_uint8");
    const size_t per = out.images[0].size();
    ASSERT_EQ(img.size(), per * out.images.size());
    for (size_t b = 0; b < out.images.size(); ++b) {
      const test_helpers::ImageDiff d = test_helpers::compare_u8(out.images[b].data(), img.data() + b * per, per);
      EXPECT_GE(d.within1, 0.999) << "image " << b;
    }
    std::printf("[ taesd img2img ] %-22s latents after %d units: max|d|/max(1,|ref|) %.3g\n", key.c_str(), units,
                worst_rel);
  }
}

// The lanczos pass with TAESD: the first pass's pictures come from TAESD's decode, and the resized
// ones are encoded by TAESD's encoder with no draw. Encoding them with the full VAE, or drawing a
// sample before the start noise, moves the second pass's latents by far more than the bound.
TEST(TaesdHires, LanczosPassMatchesDiffusers) {
  auto g = SafetensorsFile::open(kData + "/golden/taesd_img2img.safetensors");
  const nlohmann::json r = hires_run(nlohmann::json::parse(g->metadata().at("runs")));
  ModelOptions o;
  o.vae_tiny = kData + "/tiny_taesd";
  o.need_encoder = true;
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o);
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
  p.hires.width = r["hires_width"];
  p.hires.height = r["hires_height"];
  p.hires.steps = r["hires_steps"];
  p.hires.denoise = r["denoise"];
  p.hires.upscaler = HiresUpscaler::Lanczos;
  p.record_unit_latents = true;
  const GeneratedBatch out = pipe.generate(p);
  const std::string key = r["key"];
  const float worst_rel = worst_unit_error(out, g->to_floats(*g->find(key + ".latents_per_unit")), r["units"]);
  EXPECT_LE(worst_rel, 2e-5f);
  const std::vector<uint8_t> img = golden_bytes(*g, key + ".image_uint8");
  ASSERT_EQ(out.images.size(), 2u);
  const size_t per = out.images[0].size();
  ASSERT_EQ(img.size(), per * 2);
  for (size_t b = 0; b < 2; ++b)
    EXPECT_GE(test_helpers::compare_u8(out.images[b].data(), img.data() + b * per, per).within1, 0.999) << b;
  std::printf("[ taesd hires ] latents after %d units of the second pass: max|d|/max(1,|ref|) %.3g\n",
              (int)r["units"], worst_rel);
}

TEST(TaesdHires, ThroughTheBinary) {
  auto g = SafetensorsFile::open(kData + "/golden/taesd_img2img.safetensors");
  const nlohmann::json r = hires_run(nlohmann::json::parse(g->metadata().at("runs")));
  const fs::path dir = fs::temp_directory_path() / ("sdgen_taesd_hires_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const test_helpers::CliRun run = test_helpers::run_cli(
      "--model '" + kData + "/tiny_sd/diffusers' --vae-tiny '" + kData + "/tiny_taesd' --prompt '" +
      r["prompt"].get<std::string>() + "' --negative-prompt blurry --seed 57 --batch 2 --steps 5 -g 6 -W 64 -H 64 "
      "--sampler euler --hires-width 128 --hires-steps 6 --hires-denoise 0.7 --hires-upscaler lanczos "
      "--name 'img-{i}' --out '" + dir.string() + "'");
  ASSERT_EQ(run.code, 0) << run.err;
  const std::vector<uint8_t> ref = golden_bytes(*g, r["key"].get<std::string>() + ".image_uint8");
  for (int b = 0; b < 2; ++b) {
    const fs::path png = dir / ("img-" + std::to_string(b) + ".png");
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
    ASSERT_NE(px, nullptr) << png;
    ASSERT_EQ(w, 128);
    ASSERT_EQ(h, 128);
    const test_helpers::ImageDiff d = test_helpers::compare_u8(px, ref.data() + (size_t)b * w * h * 3, (size_t)w * h * 3);
    stbi_image_free(px);
    EXPECT_GE(d.within1, 0.999) << png;
  }
  fs::remove_all(dir);
}
