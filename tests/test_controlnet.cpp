// ControlNet against diffusers 0.42.1 (goldens of tests/reference/make_controlnet_goldens.py, two tiny
// ControlNets shaped like the tiny UNet, every weight random including the zero convs): the model's
// hint embedding and residuals, the original-naming single file (.safetensors and .pth) against the folder, the units'
// scales (guidance window, guess mode), the control image's resize, and StableDiffusionControlNetPipeline
// runs — one net with batch 2, two nets summed with scales 0.5/1.0 inside a 0.2–0.8 window, guess
// mode, no guidance — in fp32 (latents after every unit, images by the pixel rule) and fp16.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "cli_fixture.h"
#include "image_goldens.h"
#include "io/canny.h"
#include "io/png_text.h"
#include "io/png_writer.h"
#include "io/controlnet_file.h"
#include "io/image_read.h"
#include "io/image_resize.h"
#include "io/checkpoint.h"
#include "pipeline/memory_estimate.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"
#include "torch_save_twin.h"
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

// Net a in the original naming (control_model.*), written once per test program from folder a's
// fp16 tensors under the names the reference script recorded (orig_names_a, proven there by
// diffusers' convert_controlnet_checkpoint and from_single_file): as fp16 .safetensors, and as an
// fp32 .pth in torch.save's format (the released ControlNets' form; tests/torch_save_twin.h).
const fs::path& orig_dir() {
  static const struct TempDir {  // removed when the test program ends
    fs::path path = fs::temp_directory_path() / ("sdgen_controlnet_" + std::to_string(::getpid()));
    TempDir() { fs::create_directories(path); }
    ~TempDir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } dir;
  return dir.path;
}

// In `dtype`: F16 as stored, or F32 (the released .pth files' dtype), which holds the same values.
std::vector<StWriteTensor> orig_tensors(StDType dtype) {
  const nlohmann::json names = nlohmann::json::parse(golden().f->metadata().at("orig_names_a"));
  auto folder = SafetensorsFile::open(kNets + "a/diffusion_pytorch_model.safetensors");
  std::vector<StWriteTensor> out;
  for (const StTensorInfo& t : folder->tensors())
    out.push_back(st_tensor_from_floats(names.at(t.name).get<std::string>(), dtype, t.shape, folder->to_floats(t)));
  return out;
}

const std::string& orig_file() {
  static const std::string file = [] {
    const std::string f = (orig_dir() / "a_orig.safetensors").string();
    write_safetensors(f, orig_tensors(StDType::F16));
    return f;
  }();
  return file;
}

const std::string& orig_pth() {
  static const std::string file = [] {
    const std::string f = (orig_dir() / "control_a_orig.pth").string();
    torch_save_twin::write(f, orig_tensors(StDType::F32));
    return f;
  }();
  return file;
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
  ControlNetFile orig = open_controlnet_file(orig_file(), base_config());
  EXPECT_EQ(orig.config.conditioning_embedding_channels, folder.config.conditioning_embedding_channels);
  EXPECT_EQ(orig.weights->names(), folder.weights->names());
  const ModelRun a = run_model(ControlNet(*folder.weights, folder.config, DType::F32, Device::CPU));
  const ModelRun b = run_model(ControlNet(*orig.weights, orig.config, DType::F32, Device::CPU));
  EXPECT_EQ(a.residuals.mid.to_floats(), b.residuals.mid.to_floats());
  for (size_t i = 0; i < a.residuals.down.size(); ++i)
    EXPECT_EQ(a.residuals.down[i].to_floats(), b.residuals.down[i].to_floats()) << i;
}

// The original naming in a torch.save file (.pth, through the restricted unpickler), in fp32 as the
// released ControlNet .pth files are: the folder's tensors, and the same residuals bit for bit.
TEST(ControlNetModel, OriginalPthEqualsTheFolder) {
  ControlNetFile folder = open_controlnet_file(kNets + "a", base_config());
  ControlNetFile pth = open_controlnet_file(orig_pth(), base_config());
  EXPECT_EQ(pth.config.conditioning_embedding_channels, folder.config.conditioning_embedding_channels);
  ASSERT_EQ(pth.weights->names(), folder.weights->names());
  for (const std::string& n : folder.weights->names()) {
    const Shape shape = *folder.weights->stored_shape(n);
    EXPECT_EQ(pth.weights->get(n, shape).to_floats(), folder.weights->get(n, shape).to_floats()) << n;
  }
  const ModelRun a = run_model(ControlNet(*folder.weights, folder.config, DType::F32, Device::CPU));
  const ModelRun b = run_model(ControlNet(*pth.weights, pth.config, DType::F32, Device::CPU));
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

// SD v1.5's ControlNet: diffusers' ControlNetModel(cross_attention_dim=768) holds 361,279,120
// parameters (counted by torch on the meta device). The estimate adds them per net, and the nets'
// passes and residuals to the UNet's working set.
TEST(ControlNetMemory, ParametersAndTheEstimate) {
  const ModelConfig sd;
  EXPECT_EQ(controlnet_parameters(sd.unet), 361279120);
  MemoryRequest r;
  r.device = Device::CUDA;
  r.precision = DType::F16;
  r.batch = 3;
  const MemoryEstimate plain = estimate_memory(sd, r);
  r.controlnets = 2;
  const MemoryEstimate two = estimate_memory(sd, r);
  EXPECT_EQ(two.weights - plain.weights, (uint64_t)2 * 2 * 361279120);
  EXPECT_GT(two.unet, plain.unet);
}

class ControlNetCli : public cli_test::CliTest {};

// Run "one" through the binary (net a from the original-naming file, the diffusers folder's values):
// the images by the pixel rule, and the PNG parameters as A1111's ControlNet extension writes them.
TEST_F(ControlNetCli, BinaryMatchesDiffusersAndRecordsTheUnit) {
  const nlohmann::json& r = golden().runs[0];
  ASSERT_EQ(r["key"], "one");
  const auto run = run_raw("--device cpu -m '" + kModel + "' -p '" + r["prompt"].get<std::string>() +
                           "' -n blurry --sampler ddim --seed 51 --batch 2 --steps 5 -W 128 -H 64 --control '" + orig_file() +
                           "' --control-image '" + kData +
                           "/images/control_64x96.png' --name 'img-{i}' -o out");
  ASSERT_EQ(run.code, 0) << run.err;
  const std::vector<uint8_t> ref = golden().image("one");
  for (int b = 0; b < 2; ++b) {
    const fs::path png = dir_ / "out" / ("img-" + std::to_string(b) + ".png");
    const RgbImage im = read_image(png.string(), "output");
    const test_helpers::ImageDiff d = test_helpers::compare_u8(im.pixels.data(), ref.data() + b * im.pixels.size(),
                                                               im.pixels.size());
    EXPECT_GE(d.within1, 0.999) << png;
    const std::string text = read_png_text(png.string(), "parameters", "test");
    EXPECT_NE(text.find("ControlNet 0: \"Module: none, Model: a_orig, Weight: 1, Guidance Start: 0, Guidance End: 1\""),
              std::string::npos)
        << text;
  }
}

// Two nets from a prompt file's keys, with the window and a scale in the spec: both units in the PNG.
TEST_F(ControlNetCli, PromptFileKeysAndTwoUnits) {
  write("p.jsonl", "{\"prompt\": \"a house\", \"control\": [\"" + kNets + "a:0.5\", \"" + kNets +
                       "b\"], \"control_image\": [\"" + kData + "/images/control_64x96.png\", \"" + kData +
                       "/images/control_48x40.png\"], \"control_start\": 0.2, \"control_end\": 0.8}\n");
  const auto run = run_raw("--device cpu -m '" + kModel + "' --steps 2 -W 128 -H 64 --prompt-file p.jsonl --name x -o out");
  ASSERT_EQ(run.code, 0) << run.err;
  const std::string text = read_png_text((dir_ / "out" / "x.png").string(), "parameters", "test");
  EXPECT_NE(text.find("ControlNet 0: \"Module: none, Model: a, Weight: 0.5, Guidance Start: 0.2, Guidance End: 0.8\", "
                      "ControlNet 1: \"Module: none, Model: b, Weight: 1, Guidance Start: 0.2, Guidance End: 0.8\""),
            std::string::npos)
      << text;
}

// Bad combinations: one line each, the usage exit code, nothing written.
TEST_F(ControlNetCli, BadOptionsAreOneLine) {
  const std::string a = "--control '" + kNets + "a' ";
  const std::string img = "--control-image '" + kData + "/images/control_64x96.png' ";
  for (const auto& [args, says] : std::vector<std::pair<std::string, std::string>>{
           {a, "--control needs one --control-image each, in order: 1 --control, 0 --control-image"},
           {a + img + "--control-start 0.8 --control-end 0.5", "--control-start 0.8 must not be above --control-end 0.5"},
           {a + img + "--control-end 1.5", "--control-end must be between 0 and 1"},
           {a + "--control-image nowhere.png", "nowhere.png"},
           {a + img + "--control-preprocess sobel", "--control-preprocess 'sobel' is not one of none, canny"},
           {"--control '" + kNets + "a:x' " + img, "SCALE 'x' is not a number"}}) {
    const auto run = this->run("-p x " + args + " -o out");
    EXPECT_EQ(run.code, (int)ExitCode::kUsage) << args << "\n" << run.err;
    EXPECT_NE(run.err.find(says), std::string::npos) << args << "\n" << run.err;
    EXPECT_EQ(lines(run.err), 1) << run.err;
    EXPECT_FALSE(fs::exists(dir_ / "out")) << args;
  }
  const auto missing = run("-p x --control nowhere " + img + " -o out");
  EXPECT_EQ(missing.code, (int)ExitCode::kModel) << missing.err;
  EXPECT_NE(missing.err.find("--control nowhere: no such file or folder"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// --control-preprocess canny: the net gets OpenCV's edges of the picture (what a run given those edges
// as its control image makes, byte for byte), and the PNG names the module.
TEST_F(ControlNetCli, CannyPreprocessGivesTheEdgesRun) {
  const std::string photo = kData + "/images/init_128x64.png";
  const RgbImage edges = canny_edges(read_image(photo, "x"), 50, 150);
  write_png((dir_ / "edges.png").string(), edges.pixels.data(), edges.width, edges.height, "");
  const std::string common = "--device cpu -m '" + kModel + "' -p house --seed 3 --steps 2 -W 128 -H 64 --control '" +
                             kNets + "a' ";
  const auto a = run_raw(common + "--control-image '" + photo +
                         "' --control-preprocess canny --canny-low 50 --canny-high 150 --name x -o a");
  ASSERT_EQ(a.code, 0) << a.err;
  const auto b = run_raw(common + "--control-image edges.png --name x -o b");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(read_image((dir_ / "a" / "x.png").string(), "a").pixels, read_image((dir_ / "b" / "x.png").string(), "b").pixels);
  const auto plain = run_raw(common + "--control-image '" + photo + "' --name x -o c");
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(read_image((dir_ / "a" / "x.png").string(), "a").pixels, read_image((dir_ / "c" / "x.png").string(), "c").pixels);
  EXPECT_NE(read_png_text((dir_ / "a" / "x.png").string(), "parameters", "test").find("Module: canny, Model: a,"),
            std::string::npos);
}
