// img2img end to end in the SIMT emulator: the picture encoded by the VAE encoder on the emulated
// CUDA backend, the plan from its begin step, the step recorded as a graph (or run eagerly), against
// diffusers' StableDiffusionImg2ImgPipeline (tests/data/golden/img2img.safetensors): DDIM at
// strength 0.3 (128×64, batch 2) in fp32, Euler ancestral at 0.75 from a cropped picture (64×128,
// batch 2) in mixed fp16; and inpainting against StableDiffusionInpaintPipeline
// (tests/data/golden/inpaint.safetensors: DDIM at 0.75, batch 2, the blend in the recorded step),
// with a regular and with a 9-channel inpainting model (tests/data/golden/inpaint9.safetensors).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../test_helpers.h"
#include "io/image_read.h"
#include "io/image_resize.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sdgen/backend.h"

using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;

struct GoldenRun {
  GenerateParams params;
  std::vector<uint8_t> image;  // the golden's, NHWC for the batch
};

GoldenRun golden_run(const std::string& key) {
  auto g = SafetensorsFile::open(kData + "/golden/img2img.safetensors");
  for (const auto& r : nlohmann::json::parse(g->metadata().at("runs"))) {
    if (r["key"] != key) continue;
    GoldenRun run;
    GenerateParams& p = run.params;
    p.prompts = r["prompts"].get<std::vector<std::string>>();
    p.negative_prompt = r["negative_prompt"];
    p.batch = r["batch"];
    p.steps = r["steps"];
    p.guidance = r["guidance"];
    p.seed = r["seed"];
    p.width = r["width"];
    p.height = r["height"];
    p.sampler = parse_sampler_options(r["sampler"]);
    p.strength = r["strength"];
    ResizeMode mode;
    EXPECT_TRUE(parse_resize_mode(r["resize_mode"], &mode));
    p.init_image = std::make_shared<const RgbImage>(fit_image(
        read_image(kData + "/images/" + r["picture"].get<std::string>(), "--init-image"), p.width, p.height, mode));
    for (float v : g->to_floats(*g->find(key + ".image_uint8"))) run.image.push_back((uint8_t)v);
    return run;
  }
  ADD_FAILURE() << key << " is not in the golden";
  return {};
}

GeneratedBatch generate(const GenerateParams& p, DType dtype, const std::string& model = kData + "/tiny_sd/diffusers") {
  set_cuda_backend_factory(&make_cuda_backend);
  Pipeline pipe(model, dtype, Device::CUDA);
  return pipe.generate(p);
}

test_helpers::ImageDiff worst_of(const GeneratedBatch& out, const std::vector<uint8_t>& ref, const char* what) {
  test_helpers::ImageDiff w{1, 1, 0};
  const size_t per = out.images[0].size();
  EXPECT_EQ(ref.size(), per * out.images.size());
  for (size_t b = 0; b < out.images.size() && ref.size() == per * out.images.size(); ++b) {
    const test_helpers::ImageDiff d = test_helpers::compare_u8(out.images[b].data(), ref.data() + b * per, per);
    std::printf("%s image %zu: %.2f%% exact, %.2f%% within ±1, worst %d\n", what, b, 100 * d.exact, 100 * d.within1,
                d.worst);
    w.exact = std::min(w.exact, d.exact), w.within1 = std::min(w.within1, d.within1), w.worst = std::max(w.worst, d.worst);
  }
  return w;
}

// An inpainting golden run's settings (make_inpaint_goldens.py, make_inpaint9_goldens.py).
GenerateParams inpaint_params(const nlohmann::json& r) {
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
  p.mask = std::make_shared<const RgbImage>(read_image(kData + "/images/" + r["mask"].get<std::string>(), "x"));
  if (r.contains("padding")) {  // the inpainting options: the picture as it is, the box rendered
    p.init_image = std::make_shared<const RgbImage>(read_image(kData + "/images/" + r["picture"].get<std::string>(), "x"));
    p.mask_blur = r["blur"];
    p.inpaint_masked = true;
    p.inpaint_padding = r["padding"];
    return p;
  }
  ResizeMode mode;
  EXPECT_TRUE(parse_resize_mode(r["resize_mode"], &mode));
  p.init_image = std::make_shared<const RgbImage>(fit_image(
      read_image(kData + "/images/" + r["picture"].get<std::string>(), "x"), p.width, p.height, mode));
  return p;
}

}  // namespace

// fp32: float32 up to summation order, as the text-to-image emulated run (≥ 99.7% exact, never 2
// levels off); the recorded step replays exactly what the eager steps compute.
TEST(CudaEmulatedImg2Img, Fp32MatchesDiffusers) {
  const GoldenRun run = golden_run("ddim_s03");
  GenerateParams eager = run.params;
  eager.cuda_graphs = false;
  const GeneratedBatch on = generate(run.params, DType::F32), off = generate(eager, DType::F32);
  EXPECT_EQ(on.latents, off.latents) << "the graph replay and the eager steps differ";
  const test_helpers::ImageDiff d = worst_of(on, run.image, "img2img fp32 emulated");
  EXPECT_GE(d.exact, 0.997);
  EXPECT_LE(d.worst, 1);
}

// Mixed fp16: the fp16 rule (tests/test_pipeline.cpp, kImageF16).
TEST(CudaEmulatedImg2Img, Fp16CloseToDiffusers) {
  const GoldenRun run = golden_run("euler_a_s075");
  const test_helpers::ImageDiff d = worst_of(generate(run.params, DType::F16), run.image, "img2img fp16 emulated");
  EXPECT_GE(d.exact, 0.60);
  EXPECT_GE(d.within1, 0.99);
  EXPECT_LE(d.worst, 6);
}

// Inpainting: the known region's blend runs inside the recorded step (ops::inpaint_blend's kernel).
TEST(CudaEmulatedImg2Img, InpaintFp32MatchesDiffusers) {
  auto g = SafetensorsFile::open(kData + "/golden/inpaint.safetensors");
  const nlohmann::json r = nlohmann::json::parse(g->metadata().at("runs"))[0];
  ASSERT_EQ(r["key"], "ddim_s075");
  const GenerateParams p = inpaint_params(r);
  GenerateParams eager = p;
  eager.cuda_graphs = false;
  const GeneratedBatch on = generate(p, DType::F32), off = generate(eager, DType::F32);
  EXPECT_EQ(on.latents, off.latents) << "the graph replay and the eager steps differ";
  std::vector<uint8_t> ref;
  for (float v : g->to_floats(*g->find("ddim_s075.image_uint8"))) ref.push_back((uint8_t)v);
  const test_helpers::ImageDiff d = worst_of(on, ref, "inpaint fp32 emulated");
  EXPECT_GE(d.exact, 0.997);
  EXPECT_LE(d.worst, 1);
}

// A 9-channel inpainting model: the UNet's input concatenated in the recorded step. The model is the
// tiny folder with the 9-channel UNet (as tests/test_inpaint9.cpp puts it together).
TEST(CudaEmulatedImg2Img, Inpaint9MatchesDiffusers) {
  namespace fs = std::filesystem;
  const fs::path model = fs::temp_directory_path() / ("sdgen_emu_inpaint9_" + std::to_string(getpid()));
  fs::remove_all(model);
  fs::copy(kData + "/tiny_sd/diffusers", model, fs::copy_options::recursive);
  fs::remove_all(model / "unet");
  fs::copy(kData + "/tiny_inpaint/unet", model / "unet", fs::copy_options::recursive);
  auto g = SafetensorsFile::open(kData + "/golden/inpaint9.safetensors");
  const nlohmann::json runs = nlohmann::json::parse(g->metadata().at("runs"));
  auto ref = [&](const std::string& key) {
    std::vector<uint8_t> out;
    for (float v : g->to_floats(*g->find(key + ".image_uint8"))) out.push_back((uint8_t)v);
    return out;
  };
  // fp32, DDIM at strength 1 (batch 2): graph and eager steps equal, float32 up to summation order.
  ASSERT_EQ(runs[0]["key"], "ddim_s1");
  const GenerateParams p = inpaint_params(runs[0]);
  GenerateParams eager = p;
  eager.cuda_graphs = false;
  const GeneratedBatch on = generate(p, DType::F32, model.string()), off = generate(eager, DType::F32, model.string());
  EXPECT_EQ(on.latents, off.latents) << "the graph replay and the eager steps differ";
  test_helpers::ImageDiff d = worst_of(on, ref("ddim_s1"), "inpaint9 fp32 emulated");
  EXPECT_GE(d.exact, 0.997);
  EXPECT_LE(d.worst, 1);
  // Mixed fp16, Euler ancestral at 0.75 from a cropped picture: the fp16 rule.
  ASSERT_EQ(runs[1]["key"], "euler_a_s075");
  d = worst_of(generate(inpaint_params(runs[1]), DType::F16, model.string()), ref("euler_a_s075"),
               "inpaint9 fp16 emulated");
  EXPECT_GE(d.exact, 0.60);
  EXPECT_GE(d.within1, 0.99);
  EXPECT_LE(d.worst, 6);
  // fp32 with the inpainting options: the mask blurred, only its box rendered and pasted back.
  ASSERT_EQ(runs[2]["key"], "ddim_s075_masked_blur3_pad16");
  d = worst_of(generate(inpaint_params(runs[2]), DType::F32, model.string()), ref("ddim_s075_masked_blur3_pad16"), "inpaint9 masked emulated");
  EXPECT_GE(d.exact, 0.997);
  EXPECT_LE(d.worst, 1);
  fs::remove_all(model);
}
