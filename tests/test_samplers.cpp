// The samplers against diffusers' schedulers (goldens of tests/reference/make_sampler_goldens.py):
//  - SamplerPlans.*: every sampler, schedule, timestep spacing and step count, run alone with a
//    fixed elementwise stand-in for the UNet: the UNet timesteps, the input divisors, the initial
//    noise scale and the latents after every unit;
//  - SamplerPipeline.*: the tiny model through the whole pipeline (in process and through the
//    sd-gen binary), each sampler's latents after every unit and the images.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <tuple>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "sdgen/ops.h"
#include "stb_image_static.h"
#include "sampler_goldens.h"
#include "test_helpers.h"

using namespace sdgen;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;
using namespace sampler_goldens;

}  // namespace

TEST(SamplerPlans, MatchDiffusersSchedulers) {
  const Golden g("sampler_tables.safetensors");
  ASSERT_GT(g.runs.size(), 250u) << "every sampler, schedule, spacing and step count";
  int checked = 0;
  float worst_rel = 0;
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    SchedulerConfig cfg;  // SD v1.5's: 1000 steps, scaled_linear 0.00085..0.012, steps_offset 1
    const std::string spacing = r["spacing"];
    cfg.timestep_spacing = spacing == "none" ? "" : spacing;
    const SamplerOptions o = parse_sampler_options(r["sampler"], r["schedule"], r["eta"].get<float>());
    const int steps = r["steps"];
    const SamplerPlan plan = plan_sampler(o, cfg, steps);

    const std::vector<float> ts = g.floats(key + ".timesteps"), div = g.floats(key + ".divisors");
    ASSERT_EQ(plan.units, (int)ts.size());
    for (int u = 0; u < plan.units; ++u) {
      EXPECT_NEAR(plan.timesteps[u], ts[u], ts[u] == std::round(ts[u]) && !o.karras() ? 0.0 : kTimestepTol) << u;
      EXPECT_NEAR(plan.in_divisor[u], div[u], 2e-6 * div[u]) << u;
    }
    EXPECT_NEAR(plan.init_sigma, g.floats(key + ".init_sigma")[0], 2e-6 * plan.init_sigma);

    // The trajectory, with the op the pipeline runs (the CPU backend's sampler_step).
    TorchCpuRandn rng(r["seed"].get<uint64_t>());
    std::vector<float> x0 = rng.randn(2 * 4 * 2 * 2);
    for (float& v : x0) v *= plan.init_sigma;
    worst_rel = std::max(worst_rel, check_trajectory(plan, x0, rng, g.floats(key + ".latents")));
    if (HasFatalFailure()) return;
    ++checked;
  }
  std::printf("[ plans ] %d sampler runs equal diffusers': max|d|/max(1,|ref|) %.3g\n", checked, worst_rel);
}

// img2img: every sampler started after its first steps as StableDiffusionImg2ImgPipeline starts it
// (tests/reference/make_img2img_goldens.py): the steps skipped for a strength, the timesteps and
// divisors of the units left, the noised initial latents (the scheduler's add_noise at the begin
// step), the latents after every unit, and inpainting's renoised known region after every unit.
TEST(SamplerPlans, Img2ImgMatchDiffusers) {
  const Golden g("img2img_tables.safetensors");
  ASSERT_GT(g.runs.size(), 200u) << "every sampler, schedule, step count and strength";
  int checked = 0, started_late = 0;
  float worst_rel = 0, worst_init = 0;
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    const SchedulerConfig cfg;
    const SamplerOptions o = parse_sampler_options(r["sampler"], r["schedule"], r["eta"].get<float>());
    const int steps = r["steps"];
    const int begin = img2img_begin(steps, r["strength"].get<double>());
    ASSERT_EQ(begin, r["t_start"].get<int>());
    started_late += begin > 0;
    const SamplerPlan plan = plan_sampler(o, cfg, steps, begin);
    const std::vector<float> ts = g.floats(key + ".timesteps"), div = g.floats(key + ".divisors");
    ASSERT_EQ(plan.units, (int)ts.size());
    for (int u = 0; u < plan.units; ++u) {
      EXPECT_NEAR(plan.timesteps[u], ts[u], ts[u] == std::round(ts[u]) && !o.karras() ? 0.0 : kTimestepTol) << u;
      EXPECT_NEAR(plan.in_divisor[u], div[u], 2e-6 * div[u]) << u;
    }
    // The start: x0 and noise drawn as the script draws them, mixed as the pipeline mixes them.
    const int n = 2 * 4 * 2 * 2;
    TorchCpuRandn rng(r["seed"].get<uint64_t>());
    const std::vector<float> x0 = rng.randn(n), noise = rng.randn(n);
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i)
      x[i] = x0[i] * plan.init_x0 + noise[i] * plan.init_noise;
    const std::vector<float> init = g.floats(key + ".init_latents");
    for (int i = 0; i < n; ++i) {
      // add_noise in float32: a product and a sum, each rounded; ours rounds the same operations.
      EXPECT_NEAR(x[i], init[i], 4e-7f * std::max(1.0f, std::fabs(init[i]))) << i;
      worst_init = std::max(worst_init, std::fabs(x[i] - init[i]));
    }
    // Inpainting's known region after every unit: the picture's latents renoised to the next level.
    const std::vector<float> renoised = g.floats(key + ".renoised");
    ASSERT_EQ(plan.renoise.size(), 2 * (size_t)plan.units);
    ASSERT_EQ(renoised.size(), (size_t)plan.units * n);
    for (int u = 0; u < plan.units; ++u)
      for (int i = 0; i < n; ++i) {
        const float proper = plan.renoise[2 * u] * x0[i] + plan.renoise[2 * u + 1] * noise[i];
        const float ref = renoised[(size_t)u * n + i];
        ASSERT_NEAR(proper, ref, 4e-7f * std::max(1.0f, std::fabs(ref))) << "unit " << u << " element " << i;
      }
    worst_rel = std::max(worst_rel, check_trajectory(plan, init, rng, g.floats(key + ".latents")));
    if (HasFatalFailure()) return;
    ++checked;
  }
  EXPECT_GT(started_late, 150);
  std::printf("[ plans ] %d img2img runs equal diffusers' (%d begin after step 0): start max|d| %.3g, "
              "latents max|d|/max(1,|ref|) %.3g\n", checked, started_late, worst_init, worst_rel);
}

TEST(SamplerPlans, RefusesWhatDiffusersDoesNotOffer) {
  SchedulerConfig cfg;
  EXPECT_THROW(plan_sampler(parse_sampler_options("euler_a", "karras", 0), cfg, 10), std::exception);  // no Karras in diffusers
  EXPECT_THROW(plan_sampler(parse_sampler_options("pndm", "karras", 0), cfg, 10), std::exception);
  EXPECT_THROW(plan_sampler(parse_sampler_options("euler", "default", 0.5f), cfg, 10), std::exception);  // η is DDIM's
  EXPECT_THROW(plan_sampler(parse_sampler_options("ddim", "default", 1.5f), cfg, 10), std::exception);
  EXPECT_THROW(parse_sampler_options("k_euler"), std::exception);
  EXPECT_THROW(plan_sampler(parse_sampler_options("ddim", "default", 0), cfg, 0), std::exception);
  EXPECT_EQ(a1111_sampler_name(parse_sampler_options("dpmpp_2m", "karras", 0)), "DPM++ 2M Karras");
  EXPECT_EQ(a1111_sampler_name(parse_sampler_options("euler_a", "default", 0)), "Euler a");
  EXPECT_EQ(a1111_sampler_name(parse_sampler_options("pndm", "default", 0)), "PLMS");
}

// ---- the pipeline ----
namespace {

struct PipeRun {
  std::string sampler, schedule;
  float eta;
};

// Images: ±1 per channel on at least 99.9% of values (what the DDIM goldens hold to).
void expect_image_close(const uint8_t* got, const uint8_t* ref, size_t n, const std::string& what) {
  const test_helpers::ImageDiff d = test_helpers::compare_u8(got, ref, n);
  EXPECT_GE(d.within1, 0.999) << what << ": share within ±1";
  EXPECT_LE(d.worst, 8) << what << ": largest channel difference";
}

}  // namespace

TEST(SamplerPipeline, LatentsAndImagesMatchDiffusers) {
  const Golden g("samplers.safetensors");
  const nlohmann::json call = nlohmann::json::parse(g.f->metadata().at("call"));
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  ASSERT_GE(g.runs.size(), 17u);
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    const PipeRun run{r["sampler"], r["schedule"], r["eta"].get<float>()};
    GenerateParams p = call_params(call, run.sampler, run.schedule, run.eta);
    p.record_unit_latents = true;
    GeneratedBatch out = pipe.generate(p);
    const std::vector<float> ref = g.floats(key + ".latents_per_unit");
    const size_t n = out.latents.size();
    const int units = r["units"];
    ASSERT_EQ(ref.size(), units * n);
    ASSERT_EQ((int)out.unit_latents.size(), units);
    float worst_rel = 0;
    for (int u = 0; u < units; ++u) {
      float worst = 0;
      for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(out.unit_latents[u][i] - ref[u * n + i]));
      const float scale = std::max(1.0f, max_abs(ref, u * n, n));
      EXPECT_LE(worst, kPipeLatentRel * scale) << "unit " << u;
      worst_rel = std::max(worst_rel, worst / scale);
    }
    EXPECT_EQ(out.latents, out.unit_latents.back());
    std::printf("[ sampler ] %-22s latents after each of %d units: max|d|/max(1,|ref|) %.3g\n", key.c_str(), units,
                worst_rel);
    const StTensorInfo* img = g.f->find(key + ".image_uint8");
    ASSERT_NE(img, nullptr);
    const uint8_t* ref_px = g.f->data(*img);
    const size_t per = out.images[0].size();
    ASSERT_EQ((size_t)img->numel(), per * out.images.size());
    for (size_t b = 0; b < out.images.size(); ++b)
      expect_image_close(out.images[b].data(), ref_px + b * per, per, key + " image " + std::to_string(b));
  }
}


// ---- the CLI ----
namespace {
using CliResult = test_helpers::CliRun;
using test_helpers::run_cli;
using test_helpers::slurp;
}  // namespace

// The sd-gen binary with --sampler and --schedule, one deterministic and one ancestral sampler, a
// prompt-file line choosing another: diffusers' images, and A1111's sampler names in the PNGs.
TEST(SamplerCli, WritesDiffusersImagesWithA1111Names) {
  const Golden g("samplers.safetensors");
  const fs::path dir = fs::temp_directory_path() / ("sdgen_samplers_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // The folder: its scheduler config says timestep_spacing "leading", as the goldens were made.
  const std::string common = "--model '" + kData + "/tiny_sd/diffusers' --prompt 'a red fox in the snow' "
                             "--negative-prompt blurry --seed 31 --batch 2 --steps 10 -W 64 -H 64 --name 'img-{i}' ";
  const std::tuple<const char*, const char*, const char*> runs[] = {
      {"dpmpp_2m", "karras", "DPM++ 2M Karras"}, {"euler_a", "default", "Euler a"}};
  for (const auto& [sampler, schedule, a1111] : runs) {
    const fs::path out = dir / sampler;
    const CliResult r = run_cli(common + "--sampler " + sampler + " --schedule " + schedule + " --out '" +
                                out.string() + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    const StTensorInfo* img = g.f->find(std::string(sampler) + "|" + schedule + ".image_uint8");
    ASSERT_NE(img, nullptr);
    for (int b = 0; b < 2; ++b) {
      const fs::path png = out / ("img-" + std::to_string(b) + ".png");
      int w = 0, h = 0, c = 0;
      unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
      ASSERT_NE(px, nullptr) << png;
      expect_image_close(px, g.f->data(*img) + b * 64 * 64 * 3, 64 * 64 * 3, png.string());
      stbi_image_free(px);
      EXPECT_NE(slurp(png).find(std::string("Sampler: ") + a1111 + ", CFG scale: 7.5"), std::string::npos)
          << png;
    }
  }
  fs::remove_all(dir);
}

TEST(SamplerCli, BadSamplerOptionsAreUsageErrors) {
  const std::string model = "--model '" + kData + "/tiny_sd/tiny_sd.safetensors' --prompt cat --out /nonexistent/x ";
  struct Case {
    const char* args;
    const char* says;
  } cases[] = {
      {"--sampler k_euler", "--sampler 'k_euler' is not available (ddim, pndm, lms, euler, euler_a, heun, dpm2, "
                            "dpmpp_2m, dpmpp_2m_sde, unipc)"},
      {"--sampler euler_a --schedule karras", "--schedule karras is not available for euler_a"},
      {"--sampler euler --schedule exponential", "--schedule 'exponential' is not one of default, karras"},
      {"--sampler euler --eta 0.5", "--eta applies to --sampler ddim only"},
      {"--eta 2", "--eta must be between 0 and 1"},
  };
  for (const Case& c : cases) {
    const CliResult r = run_cli(model + c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}
