// ControlNet with pictures in, against diffusers 0.42.1's StableDiffusionControlNetImg2ImgPipeline and
// StableDiffusionControlNetInpaintPipeline (goldens of tests/reference/make_controlnet_img2img_goldens.py):
// img2img with one net and a guidance window counted over the units that run (strength cuts the
// schedule first), inpainting with two nets on the regular model; fp32 (latents after every unit,
// images by the pixel rule), mixed fp16 (the fp16 rule), and the img2img run through the binary.
#include <gtest/gtest.h>

#include "cli_fixture.h"
#include "image_goldens.h"
#include "io/image_read.h"
#include "pipeline/model_options.h"

using namespace sdgen;
using namespace sdgen::image_goldens;

namespace {

const std::string kData = SDGEN_TEST_DATA;
const std::string kModel = kData + "/tiny_sd/diffusers";
const std::string kNets = kData + "/tiny_controlnet/";

const Golden& golden() {
  static const Golden g(kData + "/golden/controlnet_img2img.safetensors");
  return g;
}

std::shared_ptr<const RgbImage> picture(const std::string& name) {
  return std::make_shared<const RgbImage>(read_image(kData + "/images/" + name, "test picture"));
}

GenerateParams params(const nlohmann::json& r) {
  GenerateParams p = run_params(r);
  p.strength = r["strength"];
  p.init_image = picture(r["picture"]);
  if (!r["mask"].is_null()) p.mask = picture(r["mask"]);
  for (const auto& c : r["controls"]) {
    ControlParams cp;
    cp.model = kNets + c["model"].get<std::string>();
    cp.image = picture(c["image"]);
    cp.scale = c["scale"];
    p.controls.push_back(cp);
  }
  p.control_start = r["control_start"];
  p.control_end = r["control_end"];
  return p;
}

Pipeline make_pipeline(DType dtype) {
  ModelOptions o;
  o.need_encoder = true;
  return Pipeline(kModel, dtype, Device::CPU, nullptr, o);
}

}  // namespace

// The window of the img2img run is 0.2–0.9 of its 6 units (units 2..4 guided): counted over the
// whole 10-step schedule, or from the schedule's first step, it guides other units and the latents
// move by far more than the bound.
TEST(ControlNetImg2Img, LatentsAndImagesMatchDiffusers) {
  Pipeline pipe = make_pipeline(DType::F32);
  ASSERT_EQ(golden().runs.size(), 2u);
  for (const auto& r : golden().runs) {
    SCOPED_TRACE(r["key"].get<std::string>());
    GenerateParams p = params(r);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    expect_unit_latents(golden(), r, out, 2e-5f, "controlnet img2img");
    expect_images(out, golden().image(r["key"]), 0.999, 0.0, 8, r["key"]);
  }
}

// The fp16 rule (tests/test_pipeline.cpp derives it).
TEST(ControlNetImg2Img, Fp16IsCloseToDiffusers) {
  Pipeline pipe = make_pipeline(DType::F16);
  for (const auto& r : golden().runs)
    expect_images(pipe.generate(params(r)), golden().image(r["key"]), 0.99, 0.60, 6, r["key"]);
}

class ControlNetImg2ImgCli : public cli_test::CliTest {};

TEST_F(ControlNetImg2ImgCli, BinaryMatchesDiffusers) {
  const nlohmann::json& r = golden().runs[0];
  ASSERT_EQ(r["key"], "img2img");
  const auto run = run_raw("--device cpu -m '" + kModel + "' -p '" + r["prompt"].get<std::string>() +
                           "' -n blurry --sampler ddim --seed 61 --steps 10 -W 128 -H 64 --init-image '" + kData +
                           "/images/init_128x64.png' --strength 0.6 --control '" + kNets + "a:0.8' --control-image '" +
                           kData + "/images/control_64x96.png' --control-start 0.2 --control-end 0.9 -o out");
  ASSERT_EQ(run.code, 0) << run.err;
  std::vector<fs::path> pngs;
  for (const auto& e : fs::directory_iterator(dir_ / "out"))
    if (e.path().extension() == ".png") pngs.push_back(e.path());
  ASSERT_EQ(pngs.size(), 1u);
  const RgbImage im = read_image(pngs[0].string(), "output");
  const std::vector<uint8_t> ref = golden().image("img2img");
  ASSERT_EQ(im.pixels.size(), ref.size());
  EXPECT_GE(test_helpers::compare_u8(im.pixels.data(), ref.data(), ref.size()).within1, 0.999);
}
