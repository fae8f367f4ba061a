// TAESD (src/vae/taesd.h, io/taesd_file.h, --vae-tiny) against diffusers' AutoencoderTiny on the tiny
// TAESD (tests/taesd_golden.h): both file forms, fp32/fp16/bf16, plain and fast CPU paths; the
// architecture read from shapes; files that are not a TAESD refused in one line; a whole pipeline
// run with vae=AutoencoderTiny, in process and through the binary, against diffusers' image.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "cli_fixture.h"
#include "io/image_read.h"
#include "io/safetensors.h"
#include "pipeline/dry_run.h"
#include "pipeline/memory_estimate.h"
#include "pipeline/pipeline.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "taesd_golden.h"
#include "test_helpers.h"

using namespace sdgen;
using namespace sdgen::taesd_golden;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;

struct TaesdRun {
  const char* form;  // "folder" or "orig" (the original decoder file, its encoder found beside it)
  DType dtype;
  bool plain;
};

class TaesdGolden : public ::testing::TestWithParam<TaesdRun> {
 protected:
  void SetUp() override { set_cpu_plain(GetParam().plain); }
  void TearDown() override { set_cpu_plain(false); }
};

TEST_P(TaesdGolden, DecodeAndEncode) {
  const TaesdRun& r = GetParam();
  const std::string path = std::string(r.form) == "folder" ? kFolder : kDecoderFile;
  check_taesd(path, r.dtype, Device::CPU, std::string(r.form) + " " + dtype_name(r.dtype) + (r.plain ? " plain" : ""));
}

const TaesdRun kRuns[] = {{"folder", DType::F32, false}, {"folder", DType::F16, false}, {"folder", DType::BF16, false},
                     {"orig", DType::F32, false},   {"orig", DType::F16, false},   {"folder", DType::F32, true},
                     {"orig", DType::F16, true}};

INSTANTIATE_TEST_SUITE_P(TinyTaesd, TaesdGolden, ::testing::ValuesIn(kRuns), [](const auto& info) {
  return std::string(info.param.form) + "_" + dtype_name(info.param.dtype) + (info.param.plain ? "_plain" : "");
});

// The architecture the generator script built (decoder blocks 2,1,1,1; encoder 1,1,1,2; 8 channels),
// read back from shapes alone in both forms; the original encoder file finds its decoder too.
TEST(TaesdFile, ArchitectureFromShapes) {
  for (const std::string& path : {kFolder, kDecoderFile, kEncoderFile, kFolder + "/diffusion_pytorch_model.safetensors"}) {
    SCOPED_TRACE(path);
    const TaesdFile tf = open_taesd_file(path);
    EXPECT_TRUE(tf.has_decoder);
    EXPECT_TRUE(tf.has_encoder);
    EXPECT_EQ(tf.config.decoder_blocks, (std::vector<int>{2, 1, 1, 1}));
    EXPECT_EQ(tf.config.encoder_blocks, (std::vector<int>{1, 1, 1, 2}));
    EXPECT_EQ(tf.config.decoder_block_channels, (std::vector<int>{8, 8, 8, 8}));
    EXPECT_EQ(tf.config.encoder_block_channels, (std::vector<int>{8, 8, 8, 8}));
    EXPECT_EQ(tf.config.latent_channels, 4);
    EXPECT_EQ(tf.config.scaling_factor, 1.0f);
  }
}

class TaesdBadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sdgen_taesd_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A copy of `src`'s tensors, `edit` choosing (and renaming or reshaping) each; returns the path.
  std::string copy(const std::string& src, const std::string& name,
                   const std::function<bool(std::string&, Shape&)>& edit) {
    auto f = SafetensorsFile::open(src);
    std::vector<StWriteTensor> keep;
    for (const StTensorInfo& t : f->tensors()) {
      std::string n = t.name;
      Shape s = t.shape;
      std::vector<float> v = f->to_floats(t);
      if (!edit(n, s)) continue;
      int64_t numel = 1;
      for (int64_t d : s) numel *= d;
      v.resize((size_t)numel, 0.0f);
      keep.push_back(st_tensor_from_floats(n, StDType::F32, s, v));
    }
    const std::string path = (dir_ / name).string();
    write_safetensors(path, keep);
    return path;
  }
  static void expect_line(const std::function<void()>& f, const std::string& path, const std::string& says) {
    try {
      f();
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(e.code(), ExitCode::kModel) << m;
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_NE(m.find(says), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  fs::path dir_;
};

// A full VAE file is no TAESD; a TAESD decoder with a layer's shape changed, or a layer missing, is not
// read as another architecture silently.
TEST_F(TaesdBadFiles, NotATaesdIsOneLine) {
  const std::string vae = kData + "/tiny_vae_ldm.safetensors";
  expect_line([&] { open_taesd_file(vae); }, vae, "no TAESD tensors");
  const std::string shaped = copy(kDecoderFile, "shaped.safetensors", [](std::string& n, Shape& s) {
    if (n == "4.conv.2.weight") s = {8, 6, 3, 3};
    return true;
  });
  expect_line([&] {
    TaesdFile tf = open_taesd_file(shaped);
    TaesdDecoder(*tf.weights, tf.config, DType::F32, Device::CPU);
  }, shaped, "has shape [8, 6, 3, 3], expected [8, 8, 3, 3]");
  const std::string holed = copy(kDecoderFile, "holed.safetensors", [](std::string& n, Shape&) {
    return n.rfind("6.", 0) != 0;  // the first level's conv after its upsampling (5 is the Upsample)
  });
  expect_line([&] { open_taesd_file(holed); }, holed, "not a TAESD decoder");
}

// An encoder file alone cannot decode: the pipeline says so in one line, before any generation.
TEST_F(TaesdBadFiles, EncoderOnlyCannotDecode) {
  const std::string enc = (dir_ / "taesd_encoder.safetensors").string();
  fs::copy_file(kEncoderFile, enc);
  const TaesdFile tf = open_taesd_file(enc);
  EXPECT_FALSE(tf.has_decoder);
  EXPECT_TRUE(tf.has_encoder);
  ModelOptions o;
  o.vae_tiny = enc;
  expect_line([&] { Pipeline(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o); }, enc,
              "decoding needs its decoder");
}

// diffusers' StableDiffusionPipeline with vae=AutoencoderTiny (the golden's run) against ours with
// --vae-tiny: fp32, the image within ±1 in ≥ 99.9% of channels.
const uint8_t* golden_image(size_t* n) {
  static auto f = SafetensorsFile::open(kData + "/golden/taesd.safetensors");
  const StTensorInfo* t = f->find("pipeline.image_uint8");
  *n = (size_t)t->numel();
  return f->data(*t);
}

void expect_pixels(const uint8_t* got, size_t n, const std::string& what) {
  size_t ref_n = 0;
  const uint8_t* ref = golden_image(&ref_n);
  ASSERT_EQ(n, ref_n) << what;
  const test_helpers::ImageDiff d = test_helpers::compare_u8(got, ref, n);
  EXPECT_GE(d.within1, 0.999) << what;
  std::printf("[ image ] %s: %.2f%% exact, %.2f%% within ±1, worst %d\n", what.c_str(), 100.0 * d.exact,
              100.0 * d.within1, d.worst);
}

GenerateParams golden_run() {
  GenerateParams p;
  p.prompt = "a red fox in the snow";
  p.negative_prompt = "blurry";
  p.steps = 3;
  p.guidance = 3.0f;
  p.seed = 11;
  p.width = p.height = 64;
  return p;
}

TEST(TaesdPipeline, InProcessMatchesDiffusers) {
  for (const std::string& path : {kFolder, kDecoderFile}) {
    ModelOptions o;
    o.vae_tiny = path;
    Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o);
    EXPECT_EQ(pipe.taesd_name(), fs::path(path).filename().string());
    const GeneratedBatch out = pipe.generate(golden_run());
    ASSERT_EQ(out.images.size(), 1u);
    expect_pixels(out.images[0].data(), out.images[0].size(), "in process, " + path);
  }
}

// Pictures in with --vae-tiny whose file has no encoder (a decoder file alone in its folder): the full
// decoder is not loaded, the picture is encoded by the model's full encoder, and the images are TAESD's
// decode of the run's final latents (decoded here again by a TaesdDecoder of our own, pixel for pixel).
// With an encoder beside the decoder TAESD encodes (test_taesd_img2img.cpp).
TEST(TaesdPipeline, Img2ImgWithoutATaesdEncoderUsesTheFullEncoder) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_taesd_alone_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string alone = (dir / "taesd_decoder.safetensors").string();
  fs::copy_file(kDecoderFile, alone);
  ModelOptions o;
  o.vae_tiny = alone;
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o);
  GenerateParams p = golden_run();
  auto picture = std::make_shared<RgbImage>();
  picture->width = picture->height = 64;
  picture->pixels.resize(64 * 64 * 3);
  for (size_t i = 0; i < picture->pixels.size(); ++i) picture->pixels[i] = (uint8_t)(i * 7 % 256);
  p.init_image = picture;
  p.strength = 0.5;
  const GeneratedBatch out = pipe.generate(p);
  fs::remove_all(dir);
  ASSERT_NE(pipe.vae_encoder(), nullptr);
  ASSERT_EQ(out.images.size(), 1u);
  const TaesdFile tf = open_taesd_file(kFolder);
  const TaesdDecoder dec(*tf.weights, tf.config, DType::F32, Device::CPU);
  std::vector<float> nhwc(out.latents.size());
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 64; ++i) nhwc[(size_t)i * 4 + c] = out.latents[(size_t)c * 64 + i];
  const Tensor image = dec.decode(Tensor::from_floats({1, 8, 8, 4}, nhwc));
  Tensor u8 = Tensor::empty({1, 64, 64, 3}, DType::U8);
  ops::image_to_u8(image, u8);
  const uint8_t* px = u8.data_as<uint8_t>();
  EXPECT_EQ(std::vector<uint8_t>(px, px + out.images[0].size()), out.images[0]);
}

// SD's TAESD decoder by hand: conv_in 4→64 (2,368), ten blocks of three 64→64 3x3 convs with bias
// (110,784 each), three 64→64 convs without bias after the upsamplings (36,864 each), conv_out 64→3
// (1,731): 1,222,531 parameters. The memory estimate takes them, and the pass's live set, instead of
// the full decoder's under --vae-tiny.
TEST(TaesdMemory, ParametersByHandAndTheEstimate) {
  EXPECT_EQ(taesd_decoder_pass(TaesdConfig(), 1, 64, 64).parameters, 1222531);
  MemoryRequest r;
  r.device = Device::CUDA;
  r.precision = DType::F16;
  r.batch = 3;
  const ModelConfig sd;
  const MemoryEstimate full = estimate_memory(sd, r);
  r.vae_tiny = true;
  const MemoryEstimate tiny = estimate_memory(sd, r);
  EXPECT_EQ(full.weights - tiny.weights, (uint64_t)(2 * (vae_decoder_parameters(sd.vae) - 1222531)));
  // The pass's peak, by hand: the last block at 512² holds its input (the skip's), the second
  // ReLU's output, the last convolution's (the skip added in it) and that one's ReLU: four fp32
  // tensors of 64 channels; the full decoder's peak is three times it.
  EXPECT_EQ(taesd_decoder_pass(TaesdConfig(), 1, 512, 512).live_bytes, 4ull * 64 * 512 * 512 * 4);
  EXPECT_LT(tiny.vae * 2, full.vae);
  EXPECT_EQ(tiny.unet, full.unet);
}

class TaesdCli : public cli_test::CliTest {};

// Through the binary, the setting given as the prompt file's key vae_tiny (the run's other settings
// as diffusers' call had them).
TEST_F(TaesdCli, BinaryMatchesDiffusers) {
  write("p.jsonl", "{\"prompt\": \"a red fox in the snow\", \"negative_prompt\": \"blurry\", \"seed\": 11, "
                   "\"guidance\": 3, \"steps\": 3, \"vae_tiny\": \"" + kDecoderFile + "\"}\n");
  const auto r = run_raw("-W 64 -H 64 --device cpu -m '" + kData + "/tiny_sd/diffusers' --prompt-file p.jsonl -o out");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<fs::path> pngs;
  for (const auto& e : fs::directory_iterator(dir_ / "out"))
    if (e.path().extension() == ".png") pngs.push_back(e.path());
  ASSERT_EQ(pngs.size(), 1u);
  const RgbImage im = read_image(pngs[0].string(), "output");
  expect_pixels(im.pixels.data(), im.pixels.size(), "sd-gen, prompt file vae_tiny");
}

TEST_F(TaesdCli, MissingFileIsModelError) {
  const auto r = run("-p cat --vae-tiny nowhere.safetensors -o out");
  EXPECT_EQ(r.code, (int)ExitCode::kModel) << r.err;
  EXPECT_NE(r.err.find("--vae-tiny nowhere.safetensors"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

}  // namespace
