// The shared side of the pipeline-run goldens (tests/reference/make_*_goldens.py): a golden file with
// its "runs" metadata, a run's GenerateParams, the latents after every unit against the reference's,
// and images by the pixel rule.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/image_read.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "test_helpers.h"

namespace sdgen::image_goldens {

struct Golden {
  explicit Golden(const std::string& path)
      : f(SafetensorsFile::open(path)), runs(nlohmann::json::parse(f->metadata().at("runs"))) {}
  std::unique_ptr<SafetensorsFile> f;
  nlohmann::json runs;
  std::vector<float> floats(const std::string& key) const { return f->to_floats(*f->find(key)); }
  // "<key>.image_uint8": 8-bit values, stored as U8 or as floats.
  std::vector<uint8_t> image(const std::string& key) const {
    const StTensorInfo* t = f->find(key + ".image_uint8");
    if (!t) throw std::runtime_error("no golden " + key + ".image_uint8");
    std::vector<uint8_t> out;
    if (t->dtype == StDType::U8) {
      out.resize((size_t)t->numel());
      f->copy_bytes(*t, out.data());
      return out;
    }
    for (float v : floats(key + ".image_uint8")) out.push_back((uint8_t)v);
    return out;
  }
};

// The fields every run has: prompt, negative_prompt, batch, steps, guidance, seed, width, height, sampler.
inline GenerateParams run_params(const nlohmann::json& r) {
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
  return p;
}

// A picture a golden's metadata names by its path in the repository (`root`: the source tree).
inline std::shared_ptr<const RgbImage> tree_picture(const std::string& root, const nlohmann::json& path) {
  return std::make_shared<const RgbImage>(read_image(root + "/" + path.get<std::string>(), "x"));
}

// The pictures a run's metadata names (the reference scripts' pictures-in runs): "image" as the
// init picture, "mask" or "mask_image" (a path, or absent/null) as the mask, and "strength".
inline void set_pictures(GenerateParams& p, const std::string& root, const nlohmann::json& r) {
  p.init_image = tree_picture(root, r["image"]);
  for (const char* key : {"mask", "mask_image"})
    if (r.contains(key) && r[key].is_string()) p.mask = tree_picture(root, r[key]);
  p.strength = r["strength"];
}

// One ControlNet unit from a golden's controlnet metadata: the net at `model`, the metadata's control
// picture and scale.
inline ControlParams control_unit(const std::string& root, const nlohmann::json& cn, const std::string& model) {
  ControlParams c;
  c.model = model;
  c.image = tree_picture(root, cn["image"]);
  c.scale = cn["scale"];
  return c;
}

// p run with CUDA graphs on and off: the same latents and images bit for bit. Returns the graphs-on run.
inline GeneratedBatch expect_graphs_on_off_equal(Pipeline& pipe, GenerateParams p) {
  p.cuda_graphs = true;
  GeneratedBatch on = pipe.generate(p);
  p.cuda_graphs = false;
  const GeneratedBatch off = pipe.generate(p);
  EXPECT_EQ(on.latents, off.latents) << "the graph replay and the eager steps differ";
  EXPECT_EQ(on.images, off.images);
  return on;
}

// SD 2's runs (make_sd2_goldens.py, CALL): the fields of run_params, the schedule beside the sampler,
// the prediction type and guidance rescale.
inline GenerateParams sd2_run_params(const nlohmann::json& r) {
  GenerateParams p = run_params(r);
  p.sampler = parse_sampler_options(r["sampler"], r["schedule"]);
  p.prediction_type = r["prediction_type"];
  p.guidance_rescale = r["guidance_rescale"];
  return p;
}

// SDXL's runs (make_sdxl_goldens.py: diffusers' own argument names): the fields of run_params, the
// size conditioning (diffusers' (height, width) and (top, left) pairs; unset: 0, 0) and prompt_2.
inline GenerateParams sdxl_run_params(const nlohmann::json& r) {
  auto text = [&](const char* key) { return r.contains(key) && r[key].is_string() ? r[key].get<std::string>() : ""; };
  auto pair = [&](const char* key, int& a, int& b) {
    a = b = 0;
    if (r.contains(key) && !r[key].is_null()) a = r[key][0], b = r[key][1];
  };
  GenerateParams p;
  p.prompt = r["prompt"];
  p.negative_prompt = text("negative_prompt");
  p.prompt_2 = text("prompt_2");
  p.negative_prompt_2 = text("negative_prompt_2");
  p.batch = r["num_images_per_prompt"];
  p.steps = r["num_inference_steps"];
  p.guidance = r["guidance_scale"];
  p.seed = r["seed"];
  p.width = r["width"];
  p.height = r["height"];
  p.sampler = parse_sampler_options(r["sampler"], r["schedule"]);
  SizeConditioning& s = p.size_cond;
  pair("original_size", s.original_h, s.original_w);
  pair("crops_coords_top_left", s.crop_top, s.crop_left);
  pair("target_size", s.target_h, s.target_w);
  s.negative_own = r.contains("negative_original_size") && !r["negative_original_size"].is_null();
  pair("negative_original_size", s.neg_original_h, s.neg_original_w);
  pair("negative_crops_coords_top_left", s.neg_crop_top, s.neg_crop_left);
  pair("negative_target_size", s.neg_target_h, s.neg_target_w);
  return p;
}

// "<key>.latents_per_unit" against out.unit_latents (record_unit_latents): per unit, the largest
// difference within rel · max(1, max |ref|). Returns the worst such ratio.
inline float expect_unit_latents(const Golden& g, const nlohmann::json& r, const GeneratedBatch& out, float rel,
                                 const char* tag) {
  const std::string key = r["key"];
  const std::vector<float> ref = g.floats(key + ".latents_per_unit");
  const int units = r["units"];
  const size_t n = out.latents.size();
  EXPECT_EQ((int)out.unit_latents.size(), units) << key;
  if ((int)out.unit_latents.size() != units || ref.size() != units * n) {
    ADD_FAILURE() << key << ": " << out.unit_latents.size() << " units of " << n << " values, golden " << ref.size();
    return INFINITY;
  }
  float worst_rel = 0;
  for (int u = 0; u < units; ++u) {
    float worst = 0, scale = 1;
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::fabs(out.unit_latents[u][i] - ref[u * n + i]));
      scale = std::max(scale, std::fabs(ref[u * n + i]));
    }
    EXPECT_LE(worst, rel * scale) << key << " unit " << u;
    worst_rel = std::max(worst_rel, worst / scale);
  }
  std::printf("[ %s ] %-10s latents after %d units: max|d|/max(1,|ref|) %.3g\n", tag, key.c_str(), units, worst_rel);
  return worst_rel;
}

// Every image of out against ref (the images back to back): the share of channels within ±1 and
// exact, and the worst difference.
inline void expect_images(const GeneratedBatch& out, const std::vector<uint8_t>& ref, double within1, double exact,
                          int worst, const std::string& what) {
  ASSERT_FALSE(out.images.empty()) << what;
  const size_t per = out.images[0].size();
  ASSERT_EQ(ref.size(), per * out.images.size()) << what;
  for (size_t b = 0; b < out.images.size(); ++b) {
    const test_helpers::ImageDiff d = test_helpers::compare_u8(out.images[b].data(), ref.data() + b * per, per);
    EXPECT_GE(d.within1, within1) << what << " image " << b;
    EXPECT_GE(d.exact, exact) << what << " image " << b;
    EXPECT_LE(d.worst, worst) << what << " image " << b;
    std::printf("[ images ] %-24s image %zu: %.4f within 1, %.4f exact, worst %d\n", what.c_str(), b, d.within1,
                d.exact, d.worst);
  }
}

// The same against the golden's "<key>.image_uint8".
inline void expect_images(const Golden& g, const GeneratedBatch& out, const std::string& key, double within1,
                          double exact, int worst) {
  expect_images(out, g.image(key), within1, exact, worst, key);
}

}  // namespace sdgen::image_goldens
