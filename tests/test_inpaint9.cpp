// Inpainting with a 9-channel inpainting model (sd-v1-5-inpainting's layout: the UNet reads the
// latents, the mask and the masked picture's latents) against diffusers' StableDiffusionInpaintPipeline
// (goldens of tests/reference/make_inpaint9_goldens.py): DDIM at strength 1 with batch 2, Euler
// ancestral at 0.75 from a cropped picture, DDIM at 0.75 with the mask blurred and only its box
// rendered (--inpaint-area masked) and pasted back. The model is put together here from the tiny model's
// text encoder, tokenizer and VAE and the committed 9-channel UNet, as a diffusers folder and as an
// LDM single file (fp16, as the UNet is stored); in process (fp32, fp16) and through the binary.
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
  std::unique_ptr<SafetensorsFile> f = SafetensorsFile::open(kData + "/golden/inpaint9.safetensors");
  nlohmann::json runs = nlohmann::json::parse(f->metadata().at("runs"));
  std::vector<float> floats(const std::string& key) const { return f->to_floats(*f->find(key)); }
  std::vector<uint8_t> image(const std::string& key) const {
    std::vector<uint8_t> out;
    for (float v : floats(key + ".image_uint8")) out.push_back((uint8_t)v);
    return out;
  }
};

// The two forms of the tiny inpainting model, made once per test program in a temporary folder.
struct Models {
  fs::path dir = fs::temp_directory_path() / ("sdgen_inpaint9_" + std::to_string(getpid()));
  std::string folder = (dir / "diffusers").string();
  std::string single = (dir / "tiny_inpaint.safetensors").string();
  Models() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy(kData + "/tiny_sd/diffusers", folder, fs::copy_options::recursive);
    fs::remove_all(fs::path(folder) / "unet");
    fs::copy(kData + "/tiny_inpaint/unet", fs::path(folder) / "unet", fs::copy_options::recursive);
    nlohmann::json index = nlohmann::json::parse(std::ifstream(fs::path(folder) / "model_index.json"));
    index["_class_name"] = "StableDiffusionInpaintPipeline";
    std::ofstream(fs::path(folder) / "model_index.json") << index.dump(1);
    // The single file: the regular tiny file's text encoder and VAE (fp32, as the folder's), the
    // 9-channel UNet's fp16 tensors.
    std::vector<StWriteTensor> out;
    auto take = [&](const SafetensorsFile& f, bool unet) {
      for (const StTensorInfo& t : f.tensors()) {
        if ((t.name.rfind("model.diffusion_model.", 0) == 0) != unet) continue;
        StWriteTensor w{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.end - t.begin)};
        f.copy_bytes(t, w.bytes.data());
        out.push_back(std::move(w));
      }
    };
    take(*SafetensorsFile::open(kData + "/tiny_sd/tiny_sd.safetensors"), false);
    take(*SafetensorsFile::open(kData + "/tiny_inpaint/unet_ldm_fp16.safetensors"), true);
    write_safetensors(single, out);
    nlohmann::json sidecar = nlohmann::json::parse(std::ifstream(kData + "/tiny_sd/tiny_sd.safetensors.json"));
    const nlohmann::json unet = nlohmann::json::parse(std::ifstream(kData + "/tiny_inpaint/unet/config.json"));
    sidecar["unet"]["norm_num_groups"] = unet["norm_num_groups"];
    sidecar["unet"]["attention_head_dim"] = unet["attention_head_dim"];
    std::ofstream(single + ".json") << sidecar.dump(1);
  }
  ~Models() { fs::remove_all(dir); }
};
const Models& models() {
  static const Models m;
  return m;
}

std::shared_ptr<const RgbImage> picture(const std::string& file, const nlohmann::json& r) {
  ResizeMode mode;
  EXPECT_TRUE(parse_resize_mode(r["resize_mode"], &mode));
  return std::make_shared<const RgbImage>(
      fit_image(read_image(kData + "/images/" + file, "--init-image"), r["width"], r["height"], mode));
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
  p.strength = r["strength"];
  if (r.contains("padding")) {  // the inpainting options: the pictures as they are, the box rendered
    p.init_image = std::make_shared<const RgbImage>(read_image(kData + "/images/" + r["picture"].get<std::string>(), "x"));
    p.mask = std::make_shared<const RgbImage>(read_image(kData + "/images/" + r["mask"].get<std::string>(), "x"));
    p.mask_blur = r["blur"];
    p.inpaint_masked = true;
    p.inpaint_padding = r["padding"];
    return p;
  }
  p.init_image = picture(r["picture"], r);
  p.mask = picture(r["mask"], r);
  return p;
}

void expect_images(const GeneratedBatch& out, const std::vector<uint8_t>& ref, double within1, double exact, int worst,
                   const std::string& what) {
  const size_t per = out.images[0].size();
  ASSERT_EQ(ref.size(), per * out.images.size()) << what;
  for (size_t b = 0; b < out.images.size(); ++b) {
    const test_helpers::ImageDiff d = test_helpers::compare_u8(out.images[b].data(), ref.data() + b * per, per);
    EXPECT_GE(d.within1, within1) << what << " image " << b;
    EXPECT_GE(d.exact, exact) << what << " image " << b;
    EXPECT_LE(d.worst, worst) << what << " image " << b;
  }
}

// As the regular model's (tests/test_inpaint.cpp): the bound of the unmasked pipeline. A wrong
// channel order, mask sense, masked-picture value or draw order moves the latents far more.
constexpr float kLatentRel = 2e-5f;

void expect_latents(const Golden& g, const nlohmann::json& r, const GeneratedBatch& out) {
  const std::string key = r["key"];
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
  std::printf("[ inpaint9 ] %-13s latents after %d units: max|d|/max(1,|ref|) %.3g\n", key.c_str(), units, worst_rel);
}

}  // namespace

TEST(Inpaint9, FolderAndSingleFileMatchDiffusers) {
  const Golden g;
  ASSERT_EQ(g.runs.size(), 3u);
  for (const std::string& model : {models().folder, models().single}) {
    SCOPED_TRACE(model);
    Pipeline pipe(model, DType::F32, Device::CPU);
    for (const auto& r : g.runs) {
      // A single file has no scheduler config: each sampler takes its class's default spacing, which
      // is the folder's ("leading") only for DDIM.
      if (model == models().single && r["sampler"] != "ddim") continue;
      SCOPED_TRACE(r["key"].get<std::string>());
      GenerateParams p = params(r);
      p.record_unit_latents = true;
      const GeneratedBatch out = pipe.generate(p);
      expect_latents(g, r, out);
      expect_images(out, g.image(r["key"]), 0.999, 0.0, 8, r["key"]);
    }
  }
}

// The fp16 rule (tests/test_pipeline.cpp derives it).
TEST(Inpaint9, Fp16IsCloseToDiffusers) {
  const Golden g;
  Pipeline pipe(models().folder, DType::F16, Device::CPU);
  for (const auto& r : g.runs) expect_images(pipe.generate(params(r)), g.image(r["key"]), 0.99, 0.60, 6, r["key"]);
}

TEST(Inpaint9Cli, SingleFileGivesDiffusersImages) {
  const Golden g;
  const nlohmann::json& r = g.runs[0];  // DDIM at strength 1, batch 2, 128x64
  const fs::path dir = models().dir / "out";
  const test_helpers::CliRun run = test_helpers::run_cli(
      "--model '" + models().single + "' --prompt '" + r["prompt"].get<std::string>() +
      "' --negative-prompt blurry --sampler ddim --seed 31 --batch 2 --steps 8 -W 128 -H 64 --init-image '" + kData +
      "/images/init_128x64.png' --mask '" + kData + "/images/mask_128x64.png' --strength 1 --name 'img-{i}' --out '" +
      dir.string() + "'");
  ASSERT_EQ(run.code, 0) << run.err;
  const std::vector<uint8_t> ref = g.image(r["key"]);
  for (int b = 0; b < 2; ++b) {
    const fs::path png = dir / ("img-" + std::to_string(b) + ".png");
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
    ASSERT_NE(px, nullptr) << png;
    const test_helpers::ImageDiff d = test_helpers::compare_u8(px, ref.data() + b * 128 * 64 * 3, 128 * 64 * 3);
    stbi_image_free(px);
    EXPECT_GE(d.within1, 0.999) << png;
  }
}

// Without a mask an inpainting model has nothing to condition on: one line, nothing written.
TEST(Inpaint9Cli, WithoutAMaskIsOneLine) {
  const fs::path out = models().dir / "nothing";
  for (const std::string& extra : {std::string(), " --init-image '" + kData + "/images/init_128x64.png'"}) {
    const test_helpers::CliRun r = test_helpers::run_cli("--model '" + models().folder +
                                                         "' --prompt cat -W 128 -H 64 --steps 2 --out '" +
                                                         out.string() + "'" + extra);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("is an inpainting model (its UNet takes 9 channels): it needs --init-image and --mask"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}
