// The settings table (src/cli/settings.h): every setting is complete, and the two ways of writing
// a value, the command line and a prompt-file line, agree on what they accept and what it means.
// The ranges asserted are the documented ones (README "Usage"), not read back from the table.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "cli/settings.h"
#include "sdgen/error.h"

using namespace sdgen;
using namespace sdgen::cli;
using Json = nlohmann::json;

namespace {

// The job after one setting's text, or the usage error's text.
struct Outcome {
  bool ok = false;
  Json value;       // the setting's identity value when ok
  std::string why;  // the error, or the job's setting problem
};

// Every setting's check of the job (η's range is the sampler's), and the setting's value.
// The inpainting options need a mask (and --inpaint-padding the masked area): a job that has them.
void add_context(const Setting& s, Job& j) {
  const std::string o = s.option();
  if (o != "--mask-blur" && o != "--inpaint-area" && o != "--inpaint-padding" && o != "--inpaint-fill") return;
  j.init_image = std::string(SDGEN_TEST_DATA) + "/images/init_101x70.png";
  j.mask = std::string(SDGEN_TEST_DATA) + "/images/mask_101x70.png";
  j.inpaint_masked = o == "--inpaint-padding";
}

Outcome checked(const Setting& s, const Job& j) {
  Outcome o;
  try {
    check_settings(j);
    o.ok = true;
  } catch (const Error& e) {
    o.why = e.what();
  }
  o.value = s.identity(j, RecordContext{});
  return o;
}

Outcome through_cli(const Setting& s, const std::string& text) {
  Outcome o;
  Job j;
  add_context(s, j);
  try {
    CLI::App app;
    add_settings(app, j, {s.option()});
    std::vector<std::string> args = {"sd-gen", s.option()};
    if (s.type != SettingType::Flag) args.push_back(text);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    app.parse((int)argv.size(), argv.data());
  } catch (const Error& e) {
    o.why = e.what();
    return o;
  } catch (const CLI::ParseError& e) {
    o.why = e.what();
    return o;
  }
  return checked(s, j);
}

Outcome through_prompt_file(const Setting& s, const Json& value) {
  Outcome o;
  Job j;
  add_context(s, j);
  j.origin = "p.txt:1";
  try {
    Json line = {{"prompt", "x"}};
    line[s.key] = value;
    apply_prompt_line(j, line);
  } catch (const Error& e) {
    o.why = e.what();
    return o;
  }
  return checked(s, j);
}

}  // namespace

TEST(Settings, EverySettingIsComplete) {
  std::set<std::string> flags, keys, names;
  for (const Setting& s : job_settings()) {
    SCOPED_TRACE(s.flags);
    EXPECT_EQ(s.option().rfind("--", 0), 0u) << "a long flag";
    EXPECT_TRUE(flags.insert(s.option()).second) << "flag given twice";
    ASSERT_NE(s.help, nullptr);
    EXPECT_GT(std::string(s.help).size(), 10u);
    ASSERT_NE(s.json, nullptr) << "no JSON name";
    EXPECT_TRUE(names.insert(s.json).second) << "JSON name given twice";
    if (s.key) {
      EXPECT_TRUE(keys.insert(s.key).second) << "key given twice";
    }
    EXPECT_TRUE(s.parse && s.identity && s.record);
    if (s.key) {
      EXPECT_TRUE(s.from_json) << "a prompt-file key without a reader";
    }
    // A label is written by its entry, or only read by --from-png ("Schedule type", which ours
    // folds into the Sampler name; "Seed", which parameters_text writes per image).
    if (s.png) {
      EXPECT_TRUE(s.a1111 && s.png_rank > 0);
    }
    if (s.a1111 && !s.png) {
      EXPECT_TRUE(std::string(s.a1111) == "Schedule type" || std::string(s.a1111) == "Seed") << s.a1111;
    }
    if (s.type == SettingType::Int || s.type == SettingType::Real) {
      EXPECT_LT(s.min, s.max);
    }
    if (s.type == SettingType::Word) {
      EXPECT_FALSE(s.words.empty());
    }
  }
  // The per-prompt settings of the README's prompt-file section, and the run-wide ones, which a
  // prompt-file line must refuse.
  for (const char* k : {"prompt", "negative_prompt", "batch", "steps", "guidance", "seed", "width", "height", "emphasis",
                        "sampler", "schedule", "eta", "rng", "seed_mode", "name", "model", "clip_skip", "vae", "lora",
                        "precision", "device", "out", "vae_batch", "init_image", "strength", "resize_mode", "mask",
                        "mask_blur", "inpaint_area", "inpaint_padding", "inpaint_fill",
                        "hires_scale", "hires_width", "hires_height", "hires_steps", "hires_denoise", "hires_upscaler",
                        "vae_tiny", "control", "control_image", "control_start", "control_end", "guess_mode",
                        "control_preprocess", "canny_low", "canny_high", "text_cleanup", "prediction_type",
                        "guidance_rescale", "original_size", "crop_coords", "target_size", "negative_original_size",
                        "negative_crop_coords", "negative_target_size", "prompt_2", "negative_prompt_2"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_EQ(keys.size(), 57u);
}

TEST(Settings, RangesAreTheDocumentedOnes) {
  const std::map<std::string, std::pair<double, double>> documented = {
      {"--batch", {1, 64}},  {"--steps", {1, 500}}, {"--width", {64, 2048}},   {"--height", {64, 2048}},
      {"--guidance", {0, 100}}, {"--eta", {0, 1}}, {"--clip-skip", {1, 48}}, {"--vae-batch", {1, 64}},
      {"--guidance-rescale", {0, 1}}, {"--mask-blur", {0, 256}}, {"--inpaint-padding", {0, 16384}}, {"--control-start", {0, 1}},
      {"--control-end", {0, 1}}, {"--canny-low", {0, 1000}}, {"--canny-high", {0, 1000}}};
  for (const auto& [flag, range] : documented) {
    const Setting* s = find_setting(flag);
    ASSERT_NE(s, nullptr) << flag;
    EXPECT_EQ(s->min, range.first) << flag;
    EXPECT_EQ(s->max, range.second) << flag;
  }
}

// At each end of every range, just inside and just outside, and for every word: the command line
// and a prompt-file line accept the same values, refuse the same ones, and set the same value.
TEST(Settings, CommandLineAndPromptFileAgree) {
  for (const Setting& s : job_settings()) {
    if (!s.key) continue;
    SCOPED_TRACE(s.option());
    std::vector<std::pair<std::string, Json>> cases;  // (text, JSON)
    switch (s.type) {
      case SettingType::Int: {
        const std::string o = s.option();
        const int step = o == "--width" || o == "--height" || o == "--hires-width" || o == "--hires-height" ? 64 : 1;
        for (double v : {s.min - step, s.min, s.max, s.max + step, s.min + step})
          cases.emplace_back(std::to_string((int)v), Json((int)v));
        if (step == 64) cases.emplace_back("100", Json(100));  // in range, not a multiple of 64
        break;
      }
      case SettingType::Real:
        for (double v : {s.min - 0.25, s.min, s.max, s.max + 0.25, (s.min + s.max) / 2}) {
          char t[32];
          std::snprintf(t, sizeof t, "%g", v);
          cases.emplace_back(t, Json(v));
        }
        break;
      case SettingType::Word:
        for (const std::string& w : s.words)
          if (w != "cuda:N") cases.emplace_back(w, Json(w));
        cases.emplace_back("cuda:3", Json("cuda:3"));
        cases.emplace_back("nonsense", Json("nonsense"));
        break;
      case SettingType::Seed:
        for (const char* t : {"0", "7", "18446744073709551615", "-1"}) cases.emplace_back(t, Json::parse(t));
        cases.emplace_back("-2", Json(-2));
        break;
      case SettingType::Flag:
        cases.emplace_back("", Json(std::string(s.flag_sets) == "true"));
        break;
      case SettingType::Text:
      case SettingType::TextList:
        cases.emplace_back("some text", Json("some text"));
        break;
    }
    for (size_t c = 0; c < cases.size(); ++c) {
      const auto& [text, json] = cases[c];
      const Outcome a = through_cli(s, text), b = through_prompt_file(s, json);
      // Numbers: just outside each end (cases 0 and 3) and off the 64 grid refused, the ends and
      // a value inside accepted.
      if (s.type == SettingType::Int || s.type == SettingType::Real) {
        EXPECT_EQ(a.ok, c == 1 || c == 2 || c == 4) << text << ": " << a.why;
      }
      EXPECT_EQ(a.ok, b.ok) << text << ": command line '" << a.why << "', prompt file '" << b.why << "'";
      if (a.ok && b.ok) {
        EXPECT_EQ(a.value, b.value) << text;
      }
      if (s.type == SettingType::Word && text == "nonsense") {
        EXPECT_FALSE(a.ok || b.ok) << s.option();
      }
    }
  }
  // Hand-checked ends: what the README says each accepts.
  const Setting& width = *find_setting("--width");
  EXPECT_TRUE(through_cli(width, "2048").ok);
  EXPECT_FALSE(through_cli(width, "2112").ok);
  EXPECT_FALSE(through_prompt_file(width, 32).ok);
  EXPECT_FALSE(through_prompt_file(*find_setting("--eta"), 1.5).ok);
  EXPECT_TRUE(through_prompt_file(*find_setting("--guidance"), 0).ok);
}

TEST(Settings, PromptFileTypesAreNamed) {
  const Setting& steps = *find_setting("--steps");
  EXPECT_EQ(steps.json_type_problem(Json(2.5)), "must be an integer, not 2.5");
  EXPECT_EQ(steps.json_type_problem(Json(4294967360LL)), "must be an integer in the int range, not 4294967360");
  EXPECT_EQ(find_setting("--guidance")->json_type_problem(Json("7")), "must be a number, not \"7\"");
  EXPECT_EQ(find_setting("--lora")->json_type_problem(Json::array({"a", 1})),
            "must be a string or a list of strings, not [\"a\",1]");
  EXPECT_TRUE(find_setting("--lora")->json_type_problem(Json::array({"a", "b"})).empty());
  EXPECT_EQ(find_setting("--no-emphasis")->json_type_problem(Json(0)), "must be true or false, not 0");
}

// The PNG parameters in A1111's order, from the table plus the run's own values.
TEST(Settings, InfotextFollowsA1111Order) {
  Job j;
  j.steps = 20;
  j.guidance = 6.5f;
  j.width = 640;
  j.height = 448;
  j.sampler = parse_sampler_options("dpmpp_2m", "karras");
  j.clip_skip = 2;
  j.batch = 2;
  RecordContext ctx;
  const std::string text = settings_infotext(j, ctx, {{40, "Seed: 5"}, {60, "Model: m"}, {170, "Batch pos: 1"}});
  EXPECT_EQ(text,
            "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 5, Size: 640x448, Model: m, "
            "Precision: fp32, RNG: CPU, Seed mode: batch, Clip skip: 2, Batch size: 2, Batch pos: 1");
}

// The manifest identity keeps the names and values earlier manifests hold, so that a resumed run
// finds the images an older sd-gen recorded.
TEST(Settings, IdentityKeepsItsNames) {
  Job j;
  j.prompt = "p";
  j.loras.push_back({"x.safetensors:0.80", LoraSpec{"x.safetensors", 0.8f}});
  RecordContext ctx;
  ctx.base_seed = 9;
  const Json id = settings_identity(j, ctx);
  std::set<std::string> keys;
  for (auto it = id.begin(); it != id.end(); ++it) keys.insert(it.key());
  EXPECT_EQ(keys, (std::set<std::string>{"prompt", "negative_prompt", "seed", "batch", "steps", "guidance", "width",
                                          "height", "sampler", "schedule", "eta", "rng", "seed_mode", "precision",
                                          "emphasis", "ema", "clip_skip", "vae", "embeddings", "loras"}));
  j.vae_tiny = "taesd_decoder.safetensors";  // on, it joins the identity under its prompt-file key
  EXPECT_EQ(settings_identity(j, ctx)["vae_tiny"], "taesd_decoder.safetensors");
  EXPECT_EQ(id["seed"], 9u);
  EXPECT_EQ(id["loras"], Json::array({"x.safetensors:0.80"}));  // the spec as written
  EXPECT_EQ(id["sampler"], "ddim");
  EXPECT_EQ(id["precision"], "fp32");
  EXPECT_EQ(id["seed_mode"], "batch");
}

// A prompt-file line's "lora" replaces the command line's --lora list; its tags add to it.
TEST(Settings, LineLorasReplaceTheCommandLines) {
  Job j;
  find_setting("--lora")->parse(j, "a.safetensors:0.5");
  j.prompt = "x <lora:c:0.25>";
  apply_prompt_line(j, Json{{"prompt", "y <lora:d:0.75>"}, {"lora", "b.safetensors"}});
  finish_job(j);
  const std::vector<LoraSpec> all = job_loras(j);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], (LoraSpec{"b.safetensors", 1.0f}));
  EXPECT_EQ(all[1], (LoraSpec{"./d.safetensors", 0.75f}));
  EXPECT_EQ(j.text_prompt, "y ");
}
