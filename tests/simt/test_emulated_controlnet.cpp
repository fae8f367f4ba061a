// ControlNet end to end in the SIMT emulator, against diffusers' StableDiffusionControlNetPipeline
// (tests/data/golden/controlnet.safetensors, tests/reference/make_controlnet_goldens.py): the hint
// embeddings made once, the nets and the residuals' scaled adds (ops::add_scaled_at's kernel) inside
// the recorded step. fp32: two nets in a guidance window, and guess mode, with the step recorded and
// run eagerly (equal latents); a replayed step refilled with another scale and control image; mixed
// fp16 by the fp16 rule; img2img and inpainting with ControlNets in fp32.
#include <gtest/gtest.h>

#include "../image_goldens.h"
#include "io/image_read.h"
#include "pipeline/model_options.h"
#include "sdgen/backend.h"

using namespace sdgen;
using namespace sdgen::image_goldens;

namespace {

const std::string kData = SDGEN_TEST_DATA;

const Golden& golden() {
  static const Golden g(kData + "/golden/controlnet.safetensors");
  return g;
}

const nlohmann::json& run_of(const std::string& key) {
  for (const auto& r : golden().runs)
    if (r["key"] == key) return r;
  throw std::runtime_error(key + " is not in the golden");
}

std::shared_ptr<const RgbImage> picture(const std::string& file) {
  return std::make_shared<const RgbImage>(read_image(kData + "/images/" + file, "x"));
}

GenerateParams control_params(const nlohmann::json& r) {
  GenerateParams p = run_params(r);
  for (const auto& c : r["controls"])
    p.controls.push_back({kData + "/tiny_controlnet/" + c["model"].get<std::string>(), picture(c["image"]), c["scale"]});
  p.control_start = r["control_start"];
  p.control_end = r["control_end"];
  p.guess_mode = r["guess_mode"];
  return p;
}

std::unique_ptr<Pipeline> pipeline(DType dtype) {
  set_cuda_backend_factory(&make_cuda_backend);
  return std::make_unique<Pipeline>(kData + "/tiny_sd/diffusers", dtype, Device::CUDA);
}

}  // namespace

// float32 up to summation order, as the other emulated pipeline runs (≥ 99.7% exact, never 2 levels off).
TEST(CudaEmulatedControlNet, Fp32MatchesDiffusersRecordedAndEager) {
  for (const std::string key : {"two", "guess"}) {
    SCOPED_TRACE(key);
    const nlohmann::json& r = run_of(key);
    GenerateParams p = control_params(r);
    p.record_unit_latents = true;
    GenerateParams eager = p;
    eager.cuda_graphs = false;
    const GeneratedBatch on = pipeline(DType::F32)->generate(p), off = pipeline(DType::F32)->generate(eager);
    EXPECT_EQ(on.latents, off.latents) << "the graph replay and the eager steps differ";
    expect_unit_latents(golden(), r, on, 2e-5f, "controlnet emulated");
    expect_images(on, golden().image(key), 0.999, 0.997, 1, key);
  }
}

// A second generation with the same shapes replays the recorded step: its scales table and hint
// embeddings are refilled in place (here from scale 1 and the other picture to the golden's).
TEST(CudaEmulatedControlNet, ReplayedStepTakesTheNewScaleAndImage) {
  const nlohmann::json& r = run_of("noguide");  // net a at scale 0.5, control_64x96.png
  auto pipe = pipeline(DType::F32);
  GenerateParams first = control_params(r);
  first.controls[0].scale = 1.0f;
  first.controls[0].image = picture("control_48x40.png");
  (void)pipe->generate(first);
  GenerateParams p = control_params(r);
  p.record_unit_latents = true;
  const GeneratedBatch out = pipe->generate(p);
  EXPECT_TRUE(out.step_graph_reused);
  expect_unit_latents(golden(), r, out, 2e-5f, "controlnet emulated replay");
  expect_images(out, golden().image("noguide"), 0.999, 0.997, 1, "noguide replayed");
}

// Mixed fp16: the fp16 rule (tests/test_pipeline.cpp, kImageF16).
TEST(CudaEmulatedControlNet, Fp16CloseToDiffusers) {
  const nlohmann::json& r = run_of("one");
  expect_images(pipeline(DType::F16)->generate(control_params(r)), golden().image("one"), 0.99, 0.60, 6, "one fp16");
}

// With pictures in (tests/data/golden/controlnet_img2img.safetensors,
// tests/reference/make_controlnet_img2img_goldens.py): img2img with one net in a window of the cut
// schedule, and inpainting with two nets (the blend op after the step's residual adds); fp32.
TEST(CudaEmulatedControlNet, Img2ImgAndInpaintFp32MatchDiffusers) {
  const Golden g(kData + "/golden/controlnet_img2img.safetensors");
  ASSERT_EQ(g.runs.size(), 2u);
  set_cuda_backend_factory(&make_cuda_backend);
  ModelOptions o;
  o.need_encoder = true;
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CUDA, nullptr, o);
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    GenerateParams p = run_params(r);
    p.strength = r["strength"];
    p.init_image = picture(r["picture"]);
    if (!r["mask"].is_null()) p.mask = picture(r["mask"]);
    for (const auto& c : r["controls"])
      p.controls.push_back({kData + "/tiny_controlnet/" + c["model"].get<std::string>(), picture(c["image"]), c["scale"]});
    p.control_start = r["control_start"];
    p.control_end = r["control_end"];
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    expect_unit_latents(g, r, out, 2e-5f, "controlnet img2img emulated");
    expect_images(out, g.image(key), 0.999, 0.99, 1, key);
  }
}

// SDXL (tests/data/golden/sdxl.safetensors, tests/reference/make_sdxl_goldens.py): the net's own added
// conditioning (pooled text and size ids through its add_embedding), made once per generation and
// refilled on a replay. fp32 from the folder: batch 2 and guess mode (the conditional rows' added
// conditioning alone), each a replay after a generation with other size ids and scale, which must
// take the golden's; img2img and inpainting. Mixed fp16 from the LDM single file: graphs on and off
// bit for bit, SD v1's fp16 rule.
TEST(CudaEmulatedControlNet, SdxlMatchesDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  const Golden g(kData + "/golden/sdxl.safetensors");
  const nlohmann::json cn = nlohmann::json::parse(g.f->metadata().at("controlnet"));
  const std::string net = kData + "/tiny_sdxl/controlnet", root = kData + "/../..";  // the pictures' paths are the tree's
  auto params = [&](const nlohmann::json& r) {
    GenerateParams p = sdxl_run_params(r);
    p.controls.push_back(control_unit(root, cn, net));
    p.guess_mode = r["guess_mode"];
    if (r.contains("strength")) set_pictures(p, root, r);  // img2img, inpainting
    return p;
  };
  ModelOptions o;
  o.controlnets = {net};
  Pipeline pipe(kData + "/tiny_sdxl/diffusers", DType::F32, Device::CUDA, nullptr, o);
  for (const nlohmann::json& r : cn["runs"]) {
    const std::string key = r["key"];
    const bool txt2img = !r.contains("strength");
    if (txt2img) {  // first a generation with the same shapes and other size ids and scale
      GenerateParams other = params(r);
      other.size_cond.original_h = 256, other.size_cond.original_w = 512;
      other.controls[0].scale = 1.0f;
      (void)pipe.generate(other);
    }
    GenerateParams p = params(r);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    if (txt2img) EXPECT_TRUE(out.step_graph_reused) << key;
    expect_unit_latents(g, r, out, 2e-5f, ("sdxl controlnet emulated " + key).c_str());
    expect_images(out, g.image(key), 0.999, 0.99, 1, key);
  }

  Pipeline half(kData + "/tiny_sdxl/tiny_sdxl.safetensors", DType::F16, Device::CUDA, nullptr, o);
  const nlohmann::json& r = cn["runs"][0];
  expect_images(expect_graphs_on_off_equal(half, params(r)), g.image("control"), 0.99, 0.60, 6, "sdxl control fp16");
}
