// v-prediction (diffusers' prediction_type "v_prediction", SD 2.x 768-v) against diffusers'
// schedulers (goldens of tests/reference/make_vpred_goldens.py):
//  - every sampler's plan with the stand-in UNet's output read as v: the latents after every unit
//    and the denoised estimate (pred_original_sample) where the scheduler returns one;
//  - the tiny model with its scheduler config saying v_prediction, in process and through the
//    binary, and --prediction-type overriding a model whose config says nothing (an LDM file).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/pipeline.h"
#include "sampler_goldens.h"
#include "stb_image_static.h"
#include "test_helpers.h"

using namespace sdgen;
using namespace sampler_goldens;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;

// The tiny model's folder with its scheduler config saying v_prediction, once per test program.
const std::string& v_folder() {
  static const struct Folder {
    fs::path root = fs::temp_directory_path() / ("sdgen_vpred_" + std::to_string(getpid()));
    Folder() {
      fs::remove_all(root);
      fs::create_directories(root);
      fs::copy(kData + "/tiny_sd/diffusers", root / "model", fs::copy_options::recursive);
      const fs::path cfg = root / "model" / "scheduler" / "scheduler_config.json";
      nlohmann::json j = nlohmann::json::parse(std::ifstream(cfg));
      j["prediction_type"] = "v_prediction";
      std::ofstream(cfg) << j.dump(1);
    }
    ~Folder() { fs::remove_all(root); }
  } folder;
  static const std::string path = (folder.root / "model").string();
  return path;
}

void expect_images(const Golden& g, const std::string& key, const std::vector<std::vector<uint8_t>>& images) {
  const StTensorInfo* img = g.f->find("pipe." + key + ".image_uint8");
  ASSERT_NE(img, nullptr) << key;
  const size_t per = images[0].size();
  ASSERT_EQ((size_t)img->numel(), per * images.size());
  for (size_t b = 0; b < images.size(); ++b) {
    const test_helpers::ImageDiff d = test_helpers::compare_u8(images[b].data(), g.f->data(*img) + b * per, per);
    EXPECT_GE(d.within1, 0.999) << key << " image " << b;
    EXPECT_LE(d.worst, 8) << key << " image " << b;
  }
}

}  // namespace

TEST(VPrediction, PlansMatchDiffusersSchedulers) {
  const Golden g("vpred.safetensors", "tables");
  ASSERT_GE(g.runs.size(), 60u) << "every sampler and schedule, two spacings, two step counts";
  int checked = 0, with_x0 = 0;
  float worst_rel = 0, worst_x0 = 0;
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    SchedulerConfig cfg;
    cfg.prediction_type = "v_prediction";
    const std::string spacing = r["spacing"];
    cfg.timestep_spacing = spacing == "none" ? "" : spacing;
    const SamplerPlan plan =
        plan_sampler(parse_sampler_options(r["sampler"], r["schedule"], r["eta"].get<float>()), cfg, r["steps"].get<int>());
    TorchCpuRandn rng(r["seed"].get<uint64_t>());
    std::vector<float> x0 = rng.randn(2 * 4 * 2 * 2);
    for (float& v : x0) v *= plan.init_sigma;
    // The denoised estimate a preview shows, x0 = denoised[2u]·x + denoised[2u+1]·output, against
    // the scheduler's pred_original_sample.
    std::vector<float> ref_x0;
    if (r["x0"].get<bool>()) ref_x0 = g.floats("tables." + key + ".x0");
    const UnitHook hook = [&](int u, const std::vector<float>& x, const std::vector<float>& out) {
      if (ref_x0.empty()) return;
      const size_t n = x.size();
      float worst = 0;
      for (size_t i = 0; i < n; ++i) {
        const float got = plan.denoised[2 * (size_t)u] * x[i] + plan.denoised[2 * (size_t)u + 1] * out[i];
        worst = std::max(worst, std::fabs(got - ref_x0[(size_t)u * n + i]));
      }
      const float rel = worst / std::max(1.0f, max_abs(ref_x0, (size_t)u * n, n));
      EXPECT_LE(rel, kPlanLatentRel) << "x0 of unit " << u;
      worst_x0 = std::max(worst_x0, rel);
    };
    worst_rel = std::max(worst_rel, check_trajectory(plan, x0, rng, g.floats("tables." + key + ".latents"), hook));
    if (HasFatalFailure()) return;
    ++checked;
    with_x0 += !ref_x0.empty();
  }
  std::printf("[ v-pred ] %d sampler runs equal diffusers': latents max|d|/max(1,|ref|) %.3g; x0 of %d runs %.3g\n",
              checked, worst_rel, with_x0, worst_x0);
  EXPECT_GE(with_x0, 30);
}

TEST(VPrediction, PipelineMatchesDiffusers) {
  const Golden g("vpred.safetensors", "pipe");
  const nlohmann::json call = nlohmann::json::parse(g.f->metadata().at("call"));
  Pipeline pipe(v_folder(), DType::F32, Device::CPU);
  ASSERT_EQ(pipe.checkpoint().config().scheduler.prediction_type, "v_prediction");
  ASSERT_GE(g.runs.size(), 5u);
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    GenerateParams p = call_params(call, r["sampler"], r["schedule"]);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    const std::vector<float> ref = g.floats("pipe." + key + ".latents_per_unit");
    const size_t n = out.latents.size();
    const int units = r["units"];
    ASSERT_EQ(ref.size(), units * n);
    ASSERT_EQ((int)out.unit_latents.size(), units);
    float worst_rel = 0;
    for (int u = 0; u < units; ++u) {
      float worst = 0;
      for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(out.unit_latents[u][i] - ref[u * n + i]));
      const float rel = worst / std::max(1.0f, max_abs(ref, u * n, n));
      EXPECT_LE(rel, kPipeLatentRel) << "unit " << u;
      worst_rel = std::max(worst_rel, rel);
    }
    std::printf("[ v-pred ] %-16s latents after each of %d units: max|d|/max(1,|ref|) %.3g\n", key.c_str(), units,
                worst_rel);
    expect_images(g, key, out.images);
  }
  // The same model read as epsilon (the override) gives other images: the setting is in effect.
  GenerateParams eps = call_params(call, "euler", "default");
  eps.prediction_type = "epsilon";
  const GeneratedBatch e = pipe.generate(eps);
  const StTensorInfo* img = g.f->find("pipe.euler|default.image_uint8");
  ASSERT_NE(img, nullptr);
  EXPECT_LT(test_helpers::compare_u8(e.images[0].data(), g.f->data(*img), e.images[0].size()).within1, 0.8);
}

// A model whose config says epsilon (or nothing, as LDM single files, SD 2.x 768-v's too) run as
// v-prediction by --prediction-type, on the command line and in a prompt file; the records name it.
TEST(VPredictionCli, OptionOverridesTheModel) {
  const Golden g("vpred.safetensors", "pipe");
  const nlohmann::json call = nlohmann::json::parse(g.f->metadata().at("call"));
  const fs::path dir = fs::temp_directory_path() / ("sdgen_vpred_cli_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // The epsilon folder the v goldens' folder was made from (same scheduler config otherwise).
  const std::string common = "--model '" + kData + "/tiny_sd/diffusers' --negative-prompt " +
                             call["negative_prompt"].get<std::string>() + " --seed 57 --batch 2 --steps 6 -g 6 -W 128 -H 64 ";
  const test_helpers::CliRun r = test_helpers::run_sdgen(
      "--device cpu --quiet --json " + common + "--prompt '" + call["prompt"].get<std::string>() + "' --sampler euler --prediction-type v_prediction --name 'cli-{i}' --out '" +
      dir.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"prediction_type\":\"v_prediction\""), std::string::npos) << r.out;
  std::vector<std::vector<uint8_t>> images;
  for (int b = 0; b < 2; ++b) {
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load((dir / ("cli-" + std::to_string(b) + ".png")).c_str(), &w, &h, &c, 3);
    ASSERT_NE(px, nullptr);
    images.emplace_back(px, px + (size_t)w * h * 3);
    stbi_image_free(px);
  }
  expect_images(g, "euler|default", images);
  // A prompt-file line says it for its job; a bad word is one usage line.
  const fs::path pf = dir / "p.jsonl";
  std::ofstream(pf) << R"({"prompt": "x", "prediction_type": "sample"})" << "\n";
  const test_helpers::CliRun bad = test_helpers::run_cli(common + "--prompt-file '" + pf.string() + "' --out '" + dir.string() + "'");
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--prediction-type 'sample' is not one of epsilon, v_prediction"), std::string::npos) << bad.err;
  fs::remove_all(dir);
}
