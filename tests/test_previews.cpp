// Live previews: the denoised estimate each sampler plan gives for a unit (SamplerPlan::denoised,
// computed by ops::denoised) against the x0 diffusers' schedulers form themselves
// (tests/reference/make_preview_goldens.py), and the pipeline's preview hook (when it is called,
// what it gets, and that it leaves the images as they are).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/preview.h"
#include "io/image_read.h"
#include "test_helpers.h"

#include "io/checkpoint.h"
#include "pipeline/model_options.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "sdgen/backend.h"
#include "sdgen/ops.h"

using namespace sdgen;

namespace {
const std::string kData = SDGEN_TEST_DATA;
}  // namespace

// Every sampler and Karras variant, every unit: a·x + b·ε from the plan's row against the
// scheduler's x0, through the op on the plain CPU backend. A wrong σ (the next unit's, the
// midpoint's for the wrong half), a DDPM formula where the solver uses its own α, or a guided ε
// the estimate does not use shows at 1e-2 or more; float32 rounding of the coefficients leaves ~1e-6.
TEST(Previews, DenoisedMatchesDiffusers) {
  auto g = SafetensorsFile::open(kData + "/golden/previews.safetensors");
  const nlohmann::json runs = nlohmann::json::parse(g->metadata().at("runs"));
  ASSERT_EQ(runs.size(), 17u);
  set_cpu_plain(true);
  for (const auto& r : runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    const SamplerPlan plan =
        plan_sampler(parse_sampler_options(r["sampler"], r["karras"] ? "karras" : "default"), SchedulerConfig{}, r["steps"]);
    ASSERT_EQ(plan.units, (int)r["units"]);
    const std::vector<float> x = g->to_floats(*g->find(key + ".x")), e = g->to_floats(*g->find(key + ".eps")),
                             ref = g->to_floats(*g->find(key + ".x0"));
    const int64_t per = (int64_t)x.size() / plan.units;  // [2, 4, 2, 2] each
    const Tensor table = Tensor::from_floats({plan.units, 2}, plan.denoised);
    float worst = 0;
    for (int u = 0; u < plan.units; ++u) {
      const auto at = [&](const std::vector<float>& v) {
        return Tensor::from_floats({2, per / 2}, std::vector<float>(v.begin() + u * per, v.begin() + (u + 1) * per));
      };
      Tensor out = Tensor::empty({2, per / 2});
      ops::denoised(at(x), at(e), table, Tensor::from_floats({1}, {(float)u}), 7.5f, out);
      for (int64_t i = 0; i < per; ++i) {
        const float want = ref[(size_t)(u * per + i)];
        const float d = std::fabs(out.f32()[i] - want) / std::max(1.0f, std::fabs(want));
        worst = std::max(worst, d);
      }
    }
    EXPECT_LE(worst, 2e-5f);
    std::printf("[ preview ] %-20s %2d units: max |x0 - ref| / max(1, |ref|) %.3g\n", key.c_str(), plan.units, worst);
  }
  set_cpu_plain(false);
}

// Guided: the estimate uses ε_u + g·(ε_c − ε_u), as the step does (hand arithmetic on one value).
TEST(Previews, DenoisedUsesTheGuidedOutput) {
  const Tensor x = Tensor::from_floats({1, 1}, {2.0f});
  const Tensor eps = Tensor::from_floats({2, 1}, {0.5f, 1.5f});  // unconditional, conditional
  const Tensor table = Tensor::from_floats({2, 2}, {9.0f, 9.0f, 0.25f, -2.0f});
  Tensor out = Tensor::empty({1, 1});
  ops::denoised(x, eps, table, Tensor::from_floats({1}, {1.0f}), 3.0f, out);
  EXPECT_FLOAT_EQ(out.f32()[0], 0.25f * 2.0f - 2.0f * (0.5f + 3.0f * 1.0f));  // row 1, ε = 3.5
}

// The pipeline: previews after units 2 and 4 of 6 (never after the last), each the plan's estimate
// of that unit's latents — at the last preview close to the final latents' direction — and the
// images byte-identical with previews off.
TEST(Previews, PipelineCallsAtRequestedUnitsAndLeavesImagesAlone) {
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  GenerateParams p;
  p.prompt = "a red house";
  p.steps = 6;
  p.width = 64;
  p.height = 64;
  p.seed = 5;
  p.sampler = parse_sampler_options("euler");
  p.record_unit_latents = true;
  const GeneratedBatch plain = pipe.generate(p);
  std::vector<int> at;
  std::vector<std::vector<float>> got;
  p.preview_every = 2;
  p.preview = [&](int done, int units, const std::vector<float>& x0, int images, int h, int w) {
    EXPECT_EQ(units, 6);
    EXPECT_EQ(images, 1);
    EXPECT_EQ(h, 8);
    EXPECT_EQ(w, 8);
    at.push_back(done);
    got.push_back(x0);
  };
  const GeneratedBatch with = pipe.generate(p);
  EXPECT_EQ(at, (std::vector<int>{2, 4}));
  ASSERT_EQ(with.images.size(), plain.images.size());
  EXPECT_EQ(with.images[0], plain.images[0]);
  EXPECT_EQ(with.latents, plain.latents);
  // Euler: x0 of unit u = x_u − σ_u·ε_u and x_{u+1} = x_u + (σ_{u+1} − σ_u)·ε_u, so from the
  // latents before and after unit u: x0 = x_u − σ_u·(x_{u+1} − x_u)/(σ_{u+1} − σ_u).
  const SamplerPlan plan = plan_sampler(p.sampler, pipe.checkpoint().config().scheduler, 6);
  for (size_t k = 0; k < at.size(); ++k) {
    const int u = at[k] - 1;  // the unit the preview follows
    const std::vector<float>& before = plain.unit_latents[(size_t)u - 1];
    const std::vector<float>& after = plain.unit_latents[(size_t)u];
    const float sigma = std::sqrt(plan.in_divisor[(size_t)u] * plan.in_divisor[(size_t)u] - 1.0f);
    const float dsigma = plan.table[(size_t)u * plan.row_width() + 1];  // σ_{u+1} − σ_u, the ε column
    float worst = 0;
    for (size_t i = 0; i < before.size(); ++i) {
      const float want = before[i] - sigma * (after[i] - before[i]) / dsigma;
      worst = std::max(worst, std::fabs(got[k][i] - want) / std::max(1.0f, std::fabs(want)));
    }
    EXPECT_LE(worst, 1e-4f) << "preview after unit " << at[k];
  }
}

// A1111's "Approx cheap" on single latent pixels: the rows of its 4×3 matrix, ·0.5 + 0.5, clamped,
// ·255 truncated (hand arithmetic: 0.5 + 0.5·0.298 = 0.649 → 165.495 → 165).
TEST(Previews, ApproxCheapIsA1111sMatrix) {
  const float latents[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 2, 0}, {0, 0, 0, -9}};
  const int want[4][3] = {{165, 153, 154}, {151, 163, 149}, {87, 175, 194}, {255, 255, 255}};
  for (int k = 0; k < 4; ++k) {
    const RgbImage im = cli::approx_cheap(latents[k], 1, 1);
    for (int r = 0; r < 3; ++r) EXPECT_EQ(im.pixels[(size_t)r], want[k][r]) << "latent " << k << " channel " << r;
  }
  // Planes: a 1×2 latent image reads channel l of pixel p at l·2 + p.
  const float two[8] = {1, 0, 0, 1, 0, 0, 0, 0};
  const RgbImage im = cli::approx_cheap(two, 1, 2);
  EXPECT_EQ(im.pixels[0], 165);
  EXPECT_EQ(im.pixels[3], 151);
}

// Through the binary: the preview file is a PNG of the latent size (a grid for a batch), and the
// images are the same bytes with and without previews.
TEST(PreviewsCli, WritesThePreviewAndLeavesTheImagesAlone) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("sdgen_previews_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string base = "--model '" + kData + "/tiny_sd/diffusers' --prompt 'a red house' --seed 3 --steps 4 "
                           "-W 128 -H 64 --batch 2 --name 'img-{i}' --out '";
  test_helpers::CliRun run = test_helpers::run_cli(base + (dir / "plain").string() + "'");
  ASSERT_EQ(run.code, 0) << run.err;
  const std::string preview = (dir / "preview.png").string();
  run = test_helpers::run_cli(base + (dir / "with").string() + "' --preview '" + preview + "' --preview-every 2");
  ASSERT_EQ(run.code, 0) << run.err;
  for (const char* f : {"img-0.png", "img-1.png"}) {
    std::ifstream a(dir / "plain" / f, std::ios::binary), b(dir / "with" / f, std::ios::binary);
    const std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
    EXPECT_FALSE(sa.empty());
    EXPECT_EQ(sa, sb) << f;
  }
  const RgbImage p = read_image(preview, "preview");
  EXPECT_EQ(p.width, 2 * 16);  // two 16×8 latent images side by side (rows = round(√2) = 1)
  EXPECT_EQ(p.height, 8);
  // Bad: --preview-every alone, or 0; --preview a folder. One line, exit 2, nothing written.
  for (const std::string& bad : {std::string(" --preview-every 2"), " --preview '" + preview + "' --preview-every 0",
                                 " --preview '" + dir.string() + "'"}) {
    run = test_helpers::run_cli(base + (dir / "bad").string() + "'" + bad);
    EXPECT_EQ(run.code, 2) << bad << ": " << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_FALSE(fs::exists(dir / "bad")) << bad;
  }
  fs::remove_all(dir);
}

// With the tiny autoencoder the pipeline decodes the estimate itself: pictures at the generation's
// size through preview_pictures (the latents callback is not called), the images unchanged.
TEST(Previews, TinyAutoencoderDecodesThePreview) {
  ModelOptions o;
  o.vae_tiny = kData + "/tiny_taesd";
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o);
  GenerateParams p;
  p.prompt = "a red house";
  p.steps = 3;
  p.width = 128;
  p.height = 64;
  p.batch = 2;
  const GeneratedBatch plain = pipe.generate(p);
  int latents_calls = 0;
  std::vector<int> at;
  p.preview_every = 1;
  p.preview = [&](int, int, const std::vector<float>&, int, int, int) { ++latents_calls; };
  p.preview_pictures = [&](int done, int, const std::vector<RgbImage>& pictures) {
    at.push_back(done);
    ASSERT_EQ(pictures.size(), 2u);
    for (const RgbImage& im : pictures) {
      EXPECT_EQ(im.width, 128);
      EXPECT_EQ(im.height, 64);
      EXPECT_EQ(im.pixels.size(), 128u * 64 * 3);
    }
  };
  const GeneratedBatch with = pipe.generate(p);
  EXPECT_EQ(latents_calls, 0);
  EXPECT_EQ(at, (std::vector<int>{1, 2}));
  EXPECT_EQ(with.images, plain.images);
}

// The preview file is replaced, never rewritten in place: a reader polling it while previews are
// written finds no file (before the first) or a whole PNG of one preview — never a truncated PNG,
// never a mix of two. Each of the 60 previews is a uniform picture of its own value.
TEST(Previews, PollingReaderNeverSeesAPartialFile) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("sdgen_preview_poll_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "now.png").string();
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int k = 0; k < 60; ++k) {
      RgbImage im;
      im.width = 96;
      im.height = 64;
      im.pixels.assign((size_t)96 * 64 * 3, (uint8_t)(4 * k));
      cli::write_preview(path, std::vector<RgbImage>{im, im});
    }
    done = true;
  });
  int reads = 0, bad = 0;
  std::string first_bad;
  while (!done) {
    if (!fs::exists(path)) continue;
    try {
      const RgbImage p = read_image(path, "preview");
      const bool uniform = p.width == 192 && p.height == 64 &&
                           std::all_of(p.pixels.begin(), p.pixels.end(), [&](uint8_t v) { return v == p.pixels[0]; });
      if (!uniform && bad++ == 0) first_bad = "a mixed or mis-sized picture";
      ++reads;
    } catch (const std::exception& e) {
      if (bad++ == 0) first_bad = e.what();
    }
  }
  writer.join();
  EXPECT_EQ(bad, 0) << first_bad;
  EXPECT_GT(reads, 0);
  EXPECT_EQ(read_image(path, "preview").pixels[0], 4 * 59);  // the last one stays
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"now.png"}) << "a temporary file was left behind";
  fs::remove_all(dir);
}
