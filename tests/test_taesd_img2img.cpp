// img2img and inpainting whose pictures the tiny autoencoder encodes (--vae-tiny with an encoder),
// against diffusers' pipelines with vae=AutoencoderTiny (tests/reference/make_taesd_img2img_goldens.py):
// the encoder's latents taken as they are, no sample drawn, so the start noise is the generator's
// first draw; DDIM img2img at 0.6 with batch 2, Euler a inpainting at 0.75 with a regular model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/image_read.h"
#include "io/safetensors.h"
#include "pipeline/model_options.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "test_helpers.h"

using namespace sdgen;

namespace {
const std::string kData = SDGEN_TEST_DATA;
}  // namespace

TEST(TaesdImg2Img, LatentsAndImagesMatchDiffusers) {
  auto g = SafetensorsFile::open(kData + "/golden/taesd_img2img.safetensors");
  const nlohmann::json runs = nlohmann::json::parse(g->metadata().at("runs"));
  ASSERT_EQ(runs.size(), 2u);
  ModelOptions o;
  o.vae_tiny = kData + "/tiny_taesd";
  o.need_encoder = true;
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o);
  for (const auto& r : runs) {
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
    const std::vector<float> ref = g->to_floats(*g->find(key + ".latents_per_unit"));
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
      worst_rel = std::max(worst_rel, worst / scale);
    }
    // The bound of the other img2img goldens: a drawn sample or a wrong scale moves them by 1e-2 or more.
    EXPECT_LE(worst_rel, 2e-5f);
    std::vector<uint8_t> img;
    for (float v : g->to_floats(*g->find(key + ".image_uint8"))) img.push_back((uint8_t)v);
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
