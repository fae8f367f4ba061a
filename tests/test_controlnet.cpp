// ControlNet against diffusers 0.42.1 (goldens of tests/reference/make_controlnet_goldens.py, two tiny
// ControlNets shaped like the tiny UNet, every weight random including the zero convs): the model's
// hint embedding and residuals, the original-naming single file against the folder, the units'
// scales (guidance window, guess mode), the control image's resize, and StableDiffusionControlNetPipeline
// runs — one net with batch 2, two nets summed with scales 0.5/1.0 inside a 0.2–0.8 window, guess
// mode, no guidance — in fp32 (latents after every unit, images by the pixel rule) and fp16.
#include <gtest/gtest.h>

#include <cmath>

#include "image_goldens.h"
#include "io/controlnet_file.h"
#include "io/image_read.h"
#include "io/image_resize.h"
#include "io/checkpoint.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"
#include "unet/controlnet.h"

using namespace sdgen;
using namespace sdgen::image_goldens;

namespace {

const std::string kData = SDGEN_TEST_DATA;
const std::string kModel = kData + "/tiny_sd/diffusers";
const std::string kNets = kData + "/tiny_controlnet/";

const Golden& golden() {
  static const Golden g(kData + "/golden/controlnet.safetensors");
  return g;
}

const ModelConfig& base_config() {
  static const std::unique_ptr<Checkpoint> ck = Checkpoint::open(kModel);
  return ck->config();
}

// NCHW golden floats as an NHWC tensor.
Tensor nhwc(const std::string& key, const Shape& nchw) {
  return Pipeline::to_nhwc_host(golden().floats(key), (int)nchw[0], (int)nchw[1], (int)nchw[2], (int)nchw[3]);
}

void expect_close(const Tensor& got, const std::string& key, double atol, double rtol) {
  const std::vector<float> ref = golden().floats(key);
  const std::vector<float> out = Pipeline::to_nchw(got.to(Device::CPU));
  ASSERT_EQ(out.size(), ref.size()) << key;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(out[i] - ref[i]) / (atol + rtol * std::fabs(ref[i])));
  EXPECT_LE(worst, 1.0) << key;
}

struct ModelRun {
  Tensor embedding;
  ControlResiduals residuals;
};

ModelRun run_model(const ControlNet& net) {
  const Tensor x = nhwc("model.sample", {2, 4, 8, 12});
  const Tensor cond = nhwc("model.cond", {2, 3, 64, 96});
  const std::vector<float> t = golden().floats("model.timesteps");
  const Tensor tp = ops::timestep_embedding(t, 16, net.dtype(), Device::CPU);
  const CrossContext ctx = net.prepare_context(Tensor::from_floats({2, 5, 8}, golden().floats("model.context")));
  ModelRun r;
  r.embedding = net.embed_condition(cond);
  Tensor xin = net.dtype() == DType::F32 ? x : ops::cast(x, net.dtype());
  r.residuals = net.forward(xin, tp, ctx, r.embedding);
  return r;
}

GenerateParams control_params(const nlohmann::json& r) {
  GenerateParams p = run_params(r);
  for (const auto& c : r["controls"]) {
    ControlParams cp;
    cp.model = kNets + c["model"].get<std::string>();
    cp.image = std::make_shared<const RgbImage>(read_image(kData + "/images/" + c["image"].get<std::string>(), "x"));
    cp.scale = c["scale"];
    p.controls.push_back(cp);
  }
  p.control_start = r["control_start"];
  p.control_end = r["control_end"];
  p.guess_mode = r["guess_mode"];
  return p;
}

}  // namespace

// The hint embedding and all 13 residuals of net a, fp32 within the GEMM-chain bound of the UNet's
// own golden; fp16 within the fp16 bound.
TEST(ControlNetModel, ResidualsMatchDiffusers) {
  for (const DType dt : {DType::F32, DType::F16}) {
    SCOPED_TRACE(dtype_name(dt));
    ControlNetFile f = open_controlnet_file(kNets + "a", base_config());
    EXPECT_EQ(f.config.conditioning_embedding_channels, (std::vector<int>{4, 8, 8, 8}));
    const ControlNet net(*f.weights, f.config, dt, Device::CPU);
    ASSERT_EQ(net.down_residuals(), 12u);
    const ModelRun r = run_model(net);
    const double atol = dt == DType::F32 ? 1e-4 : 2e-2, rtol = dt == DType::F32 ? 1e-4 : 2e-2;
    expect_close(r.embedding, "model.cond_embedding", atol, rtol);
    for (size_t i = 0; i < 12; ++i) expect_close(r.residuals.down[i], "model.down." + std::to_string(i), atol, rtol);
    expect_close(r.residuals.mid, "model.mid", atol, rtol);
  }
}

// The original naming (control_model.*: time_embed, input_blocks, zero_convs, input_hint_block,
// middle_block_out) holds the folder's fp16 values: the same residuals, bit for bit.
TEST(ControlNetModel, OriginalNamingEqualsTheFolder) {
  ControlNetFile folder = open_controlnet_file(kNets + "a", base_config());
  ControlNetFile orig = open_controlnet_file(kNets + "a_orig.safetensors", base_config());
  EXPECT_EQ(orig.config.conditioning_embedding_channels, folder.config.conditioning_embedding_channels);
  EXPECT_EQ(orig.weights->names(), folder.weights->names());
  const ModelRun a = run_model(ControlNet(*folder.weights, folder.config, DType::F32, Device::CPU));
  const ModelRun b = run_model(ControlNet(*orig.weights, orig.config, DType::F32, Device::CPU));
  EXPECT_EQ(a.residuals.mid.to_floats(), b.residuals.mid.to_floats());
  for (size_t i = 0; i < a.residuals.down.size(); ++i)
    EXPECT_EQ(a.residuals.down[i].to_floats(), b.residuals.down[i].to_floats()) << i;
}

// The units' scales: diffusers' keep list of run "two" (6 units, window 0.2–0.8) times each net's
// scale, and guess mode's torch.logspace(-1, 0, 13)·0.8.
TEST(ControlNetScales, WindowAndGuessModeMatchDiffusers) {
  const nlohmann::json& two = golden().runs[1];
  ASSERT_EQ(two["key"], "two");
  const std::vector<float> t = control_scales({0.5f, 1.0f}, 12, 6, 0.2, 0.8, false);
  ASSERT_EQ(t.size(), 6u * 26);
  for (int u = 0; u < 6; ++u)
    for (int k = 0; k < 2; ++k) {
      const float keep = two["keep"][u][k];
      for (int i = 0; i < 13; ++i) EXPECT_EQ(t[u * 26 + k * 13 + i], keep * (k ? 1.0f : 0.5f)) << u << " " << k;
    }
  const std::vector<float> guess = control_scales({0.8f}, 12, 1, 0.0, 1.0, true);
  const std::vector<float> ref = golden().floats("model.guess_scales_0.8");
  ASSERT_EQ(guess.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(guess[i], ref[i], 1e-7f * ref[i]) << i;
}

// The 48x40 control picture as the pipeline prepares it for a 128x64 run: PIL's Lanczos, exactly.
TEST(ControlNetImage, ResizeEqualsDiffusers) {
  const RgbImage in = read_image(kData + "/images/control_48x40.png", "x");
  const RgbImage out = resize_lanczos(in, 128, 64);
  const std::vector<float> ref = golden().floats("two.control_uint8.1");  // NCHW [1, 3, 64, 128]
  ASSERT_EQ(ref.size(), out.pixels.size());
  int wrong = 0;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 64 * 128; ++i) wrong += out.pixels[(size_t)i * 3 + c] != (uint8_t)ref[(size_t)c * 64 * 128 + i];
  EXPECT_EQ(wrong, 0);
}

TEST(ControlNetPipeline, LatentsAndImagesMatchDiffusers) {
  ModelOptions o;
  o.controlnets = {kNets + "a"};
  Pipeline pipe(kModel, DType::F32, Device::CPU, nullptr, o);
  ASSERT_EQ(golden().runs.size(), 4u);
  for (const auto& r : golden().runs) {
    SCOPED_TRACE(r["key"].get<std::string>());
    GenerateParams p = control_params(r);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    // The bound of the other pipeline goldens: the control picture moves run "one"'s images by ~14 levels.
    expect_unit_latents(golden(), r, out, 2e-5f, "controlnet");
    expect_images(out, golden().image(r["key"]), 0.999, 0.0, 8, r["key"]);
  }
}

// The fp16 rule (tests/test_pipeline.cpp derives it).
TEST(ControlNetPipeline, Fp16IsCloseToDiffusers) {
  Pipeline pipe(kModel, DType::F16, Device::CPU);
  for (const auto& r : golden().runs)
    expect_images(pipe.generate(control_params(r)), golden().image(r["key"]), 0.99, 0.60, 6, r["key"]);
}

TEST(ControlNetFile, BadFilesAreOneLine) {
  auto expect_line = [](const std::string& path, const std::string& says) {
    try {
      open_controlnet_file(path, base_config());
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(e.code(), ExitCode::kModel) << m;
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_NE(m.find(says), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  };
  expect_line(kNets + "missing", "no such file or folder");
  expect_line(kData + "/tiny_vae_ldm.safetensors", "no ControlNet tensors");
  expect_line(kData + "/tiny_sd/diffusers/unet", "no hint encoder");  // a UNet folder: the encoder's names, no hint
}
