// The inpainting options --mask-blur and --inpaint-area masked against diffusers and Pillow
// (goldens of tests/reference/make_inpaint_area_goldens.py): the blurred mask bytes (exact), the
// crop boxes of get_crop_region (exact), apply_overlay's composite of a made-up picture (exact),
// and StableDiffusionInpaintPipeline fed the blurred mask, with and without padding_mask_crop
// (latents after every unit and the images, the fp32 rule of tests/test_inpaint.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/infotext.h"
#include "cli/job.h"
#include "cli/settings.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/image_blur.h"
#include "io/png_text.h"
#include "io/png_writer.h"
#include "io/safetensors.h"
#include "pipeline/inpaint_area.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "stb_image_static.h"
#include "test_helpers.h"

using namespace sdgen;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;

struct Golden {
  std::unique_ptr<SafetensorsFile> f = SafetensorsFile::open(kData + "/golden/inpaint_area.safetensors");
  nlohmann::json meta(const std::string& k) const { return nlohmann::json::parse(f->metadata().at(k)); }
  std::vector<uint8_t> bytes(const std::string& key) const {
    const StTensorInfo* t = f->find(key);
    EXPECT_NE(t, nullptr) << key;
    std::vector<uint8_t> out((size_t)t->numel());
    f->copy_bytes(*t, out.data());
    return out;
  }
  std::vector<float> floats(const std::string& key) const { return f->to_floats(*f->find(key)); }
};

RgbImage picture(const std::string& file) { return read_image(kData + "/images/" + file, "test"); }

// The overlay case's generated picture, as gradient() of the golden script.
RgbImage gradient(int w, int h) {
  RgbImage g;
  g.width = w, g.height = h;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int v : {(x * 2) % 256, (y * 3) % 256, (x + y) % 256}) g.pixels.push_back((uint8_t)v);
  return g;
}

}  // namespace

TEST(MaskBlur, BytesEqualPillowGaussianBlur) {
  const Golden g;
  for (const auto& [file, n] : std::vector<std::pair<std::string, int>>{
           {"mask_128x64.png", 1}, {"mask_128x64.png", 4}, {"mask_128x64.png", 9}, {"mask_101x70.png", 3}}) {
    const RgbImage m = picture(file);
    const std::vector<uint8_t> out = gaussian_blur_grey(grey_of(m), m.width, m.height, (float)n);
    EXPECT_EQ(out, g.bytes("blur." + file + "." + std::to_string(n))) << file << " radius " << n;
  }
}

// The radius of one of three passes, from the paper's formulas by hand: σ = 1 gives a per-pass
// variance of 1/3, L = √5, l = 0, a = 1·(0 − 1)/(6·(1/3 − 1)) = 0.25.
TEST(MaskBlur, ExtendedBoxRadiusByHand) {
  EXPECT_NEAR(extended_box_radius(1.0f, 3), 0.25f, 1e-6f);
  // σ = 3: variance 3, L = √37 ≈ 6.08, l = 2, a = 5·(6 − 9)/(6·(3 − 9)) = 15/36.
  EXPECT_NEAR(extended_box_radius(3.0f, 3), 2.0f + 15.0f / 36.0f, 1e-6f);
}

TEST(InpaintArea, CropRegionsEqualDiffusers) {
  const Golden g;
  for (const auto& c : g.meta("crops")) {
    const RgbImage m = picture(c["mask"]);
    const CropBox b = mask_crop_region(grey_of(m), m.width, m.height, c["width"], c["height"], c["pad"]);
    EXPECT_EQ(std::vector<int>({b.x1, b.y1, b.x2, b.y2}), c["box"].get<std::vector<int>>()) << c.dump();
  }
  EXPECT_TRUE(mask_is_empty(std::vector<uint8_t>(12, 0)));
  const CropBox none = mask_crop_region(std::vector<uint8_t>(12, 0), 4, 3, 64, 64, 2);
  EXPECT_LE(none.x2, none.x1);
}

TEST(InpaintArea, OverlayEqualsApplyOverlay) {
  const Golden g;
  const nlohmann::json o = g.meta("overlay");
  const RgbImage init = picture(o["picture"]), m = picture(o["mask"]);
  const std::vector<uint8_t> grey = gaussian_blur_grey(grey_of(m), m.width, m.height, o["blur"].get<float>());
  const std::vector<int> bx = o["box"];
  const CropBox box{bx[0], bx[1], bx[2], bx[3]};
  const RgbImage out = overlay_inpainted(grey, init, gradient(o["width"], o["height"]), box);
  const std::vector<uint8_t> ref = g.bytes("overlay");
  ASSERT_EQ(out.pixels.size(), ref.size());
  size_t differ = 0;
  for (size_t i = 0; i < ref.size(); ++i) differ += out.pixels[i] != ref[i];
  EXPECT_EQ(differ, 0u);
}

TEST(InpaintArea, PipelineMatchesDiffusers) {
  const Golden g;
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  for (const auto& r : g.meta("runs")) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    GenerateParams p;
    p.prompt = r["prompt"], p.negative_prompt = r["negative_prompt"];
    p.steps = r["steps"], p.guidance = r["guidance"], p.seed = r["seed"];
    p.width = r["width"], p.height = r["height"];
    p.sampler = parse_sampler_options(r["sampler"]);
    p.strength = r["strength"];
    p.init_image = std::make_shared<const RgbImage>(picture(r["picture"]));
    p.mask = std::make_shared<const RgbImage>(picture(r["mask"]));
    p.mask_blur = r["blur"];
    p.inpaint_masked = !r["padding"].is_null();
    if (p.inpaint_masked) p.inpaint_padding = r["padding"];
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    const std::vector<float> ref = g.floats(key + ".latents_per_unit");
    const int units = r["units"];
    const size_t n = out.latents.size();
    ASSERT_EQ((int)out.unit_latents.size(), units);
    ASSERT_EQ(ref.size(), units * n);
    for (int u = 0; u < units; ++u) {
      float worst = 0, scale = 1;
      for (size_t i = 0; i < n; ++i) {
        worst = std::max(worst, std::fabs(out.unit_latents[u][i] - ref[u * n + i]));
        scale = std::max(scale, std::fabs(ref[u * n + i]));
      }
      EXPECT_LE(worst, 2e-5f * scale) << "unit " << u;  // tests/test_inpaint.cpp's bound
    }
    const std::vector<int> size = r["out_size"];
    ASSERT_EQ(out.width, size[0]);
    ASSERT_EQ(out.height, size[1]);
    const std::vector<uint8_t> img = g.bytes(key + ".image_u8");
    ASSERT_EQ(out.images[0].size(), img.size());
    const test_helpers::ImageDiff d = test_helpers::compare_u8(out.images[0].data(), img.data(), img.size());
    EXPECT_GE(d.within1, 0.999);
    std::printf("[ inpaint area ] %-20s exact %.4f within1 %.4f worst %d\n", key.c_str(), d.exact, d.within1, d.worst);
  }
}

// Through the binary: the blurred, masked run (Euler a at strength 1) from its options, its PNG
// parameters, and --from-png reading them back.
TEST(InpaintAreaCli, OptionsGiveDiffusersImagesAndLabels) {
  const Golden g;
  const nlohmann::json r = g.meta("runs")[2];
  ASSERT_EQ(r["key"], "masked_blur3_pad16");
  const fs::path dir = fs::temp_directory_path() / ("sdgen_inpaint_area_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const test_helpers::CliRun run = test_helpers::run_cli(
      "--model '" + kData + "/tiny_sd/diffusers' --prompt '" + r["prompt"].get<std::string>() +
      "' --negative-prompt blurry --seed 41 --steps 5 -g 5 --sampler euler_a -W 128 -H 64 --init-image '" + kData +
      "/images/init_101x70.png' --mask '" + kData + "/images/mask_101x70.png' --strength 1 --mask-blur 3 "
      "--inpaint-area masked --inpaint-padding 16 --name img --out '" + dir.string() + "'");
  ASSERT_EQ(run.code, 0) << run.err;
  const fs::path png = dir / "img.png";
  int w = 0, h = 0, c = 0;
  unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
  ASSERT_NE(px, nullptr) << png;
  ASSERT_EQ(w, 101);
  ASSERT_EQ(h, 70);
  const std::vector<uint8_t> ref = g.bytes("masked_blur3_pad16.image_u8");
  const test_helpers::ImageDiff d = test_helpers::compare_u8(px, ref.data(), ref.size());
  stbi_image_free(px);
  EXPECT_GE(d.within1, 0.999);
  const std::string text = read_png_text(png.string(), "parameters", "test");
  EXPECT_NE(text.find("Mask blur: 3, Inpaint area: Only masked, Masked area padding: 16"), std::string::npos) << text;
  cli::Job j;
  cli::apply_png_parameters(j, png.string());
  EXPECT_EQ(j.mask_blur, 3);
  EXPECT_TRUE(j.inpaint_masked);
  EXPECT_EQ(j.inpaint_padding, 16);
  fs::remove_all(dir);
}

TEST(InpaintAreaCli, BadOptionsAreOneLineAndWriteNothing) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_inpaint_area_bad_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    // An all-black mask of the init picture's size.
    const RgbImage init = picture("init_101x70.png");
    const std::vector<uint8_t> zeros((size_t)init.width * init.height * 3, 0);
    write_png((dir / "black.png").string(), zeros.data(), init.width, init.height, "");
  }
  const std::string base = "--model '" + kData + "/tiny_sd/tiny_sd.safetensors' --prompt cat -W 64 -H 64 --out '" +
                           (dir / "out").string() + "' ";
  const std::string init = "--init-image '" + kData + "/images/init_101x70.png' ";
  const std::string mask = "--mask '" + kData + "/images/mask_101x70.png' ";
  struct Case {
    std::string args, says;
  } cases[] = {
      {init + "--mask-blur 4", "--mask-blur needs --mask"},
      {init + "--inpaint-area masked", "--inpaint-area needs --mask"},
      {init + "--inpaint-padding 8", "--inpaint-padding needs --mask"},
      {init + "--inpaint-fill latent-noise", "--inpaint-fill needs --mask"},
      {init + mask + "--inpaint-padding 8", "--inpaint-padding needs --inpaint-area masked"},
      {init + mask + "--mask-blur -1", "--mask-blur -1 must be between 0 and 256"},
      {init + mask + "--inpaint-area some", "--inpaint-area 'some' is not one of whole, masked"},
      {init + "--mask '" + (dir / "black.png").string() + "' --inpaint-area masked", "is all black"},
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

// --inpaint-fill latent-noise by hand: the start is the plan's add_noise mix a·x0 + b·z, x0 being
// the generator's fourth draw (after the picture's sample, the start's noise z and the masked
// picture's sample) where the latent-grid mask (the 128x64 mask at every 8th pixel, >= 128) is 1,
// and the picture's latents elsewhere, so the kept region starts as without the option and, DDIM
// drawing nothing per step, stays so after every unit.
TEST(InpaintFill, LatentNoiseStartByHand) {
  const std::string folder = kData + "/tiny_sd/diffusers";
  Pipeline pipe(folder, DType::F32, Device::CPU);
  GenerateParams p;
  p.prompt = "a small house", p.steps = 6, p.seed = 5, p.batch = 2, p.width = 128, p.height = 64;
  p.sampler = parse_sampler_options("ddim");
  p.strength = 0.5;
  p.init_image = std::make_shared<const RgbImage>(picture("init_128x64.png"));
  p.mask = std::make_shared<const RgbImage>(picture("mask_128x64.png"));
  p.record_unit_latents = true;
  const GeneratedBatch orig = pipe.generate(p);
  p.inpaint_latent_noise = true;
  const GeneratedBatch ln = pipe.generate(p);

  const int B = 2, C = 4, h = 8, w = 16;
  const size_t per = (size_t)C * h * w;
  LatentNoise noise(p.rng, p.seed_mode, p.seed, B);
  (void)noise.draw_shared(per);
  const std::vector<float> z = noise.draw(per);
  (void)noise.draw_shared(per);
  const std::vector<float> fill = noise.draw(per);
  const SamplerPlan plan = plan_sampler(p.sampler, Checkpoint::open(folder)->config().scheduler, p.steps,
                                        img2img_begin(p.steps, p.strength));
  const std::vector<uint8_t> grey = grey_of(*p.mask);
  ASSERT_EQ(ln.start_latents.size(), B * per);
  size_t repainted = 0, kept = 0;
  for (size_t i = 0; i < B * per; ++i) {
    const size_t y = (i / w) % h, x = i % w;
    if (grey[8 * y * 128 + 8 * x] >= 128) {
      const float ax = plan.init_x0 * fill[i], bz = plan.init_noise * z[i];
      EXPECT_EQ(ln.start_latents[i], ax + bz) << i;
      EXPECT_NE(ln.start_latents[i], orig.start_latents[i]) << i;
      ++repainted;
    } else {
      EXPECT_EQ(ln.start_latents[i], orig.start_latents[i]) << i;
      for (size_t u = 0; u < ln.unit_latents.size(); ++u) EXPECT_EQ(ln.unit_latents[u][i], orig.unit_latents[u][i]);
      ++kept;
    }
  }
  EXPECT_GT(repainted, 100u);
  EXPECT_GT(kept, 100u);
}

// The PNG labels of the four options, as A1111 writes them, and --from-png's reading of them.
TEST(InpaintFill, PngLabelsReadBack) {
  cli::Job j;
  j.init_image = kData + "/images/init_101x70.png";
  j.mask = kData + "/images/mask_101x70.png";
  j.mask_blur = 4, j.inpaint_masked = true, j.inpaint_padding = 12, j.inpaint_latent_noise = true;
  const std::string text = cli::settings_infotext(j, cli::RecordContext{}, {});
  EXPECT_NE(text.find("Mask blur: 4, Inpaint area: Only masked, Masked area padding: 12, Masked content: latent noise"),
            std::string::npos)
      << text;
  cli::Job back;
  cli::apply_infotext(back, cli::parse_infotext("cat\n" + text), "test");
  EXPECT_EQ(back.mask_blur, 4);
  EXPECT_TRUE(back.inpaint_masked);
  EXPECT_EQ(back.inpaint_padding, 12);
  EXPECT_TRUE(back.inpaint_latent_noise);
  cli::Job plain;
  plain.init_image = j.init_image, plain.mask = j.mask;
  EXPECT_EQ(cli::settings_infotext(plain, cli::RecordContext{}, {}).find("Mask"), std::string::npos);
}
