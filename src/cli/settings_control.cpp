// The ControlNet settings (settings.h's table): --control FILE[:SCALE] and --control-image IMG paired
// in order, the guidance window, guess mode and the control images' preprocessing. Off (no
// --control) they are left out of the job identity and the records, so jobs without a ControlNet keep
// the identity they had before these settings existed.
#include <filesystem>

#include "cli/setting_builders.h"
#include "io/image_read.h"
#include "io/lora_spec.h"

namespace fs = std::filesystem;

namespace sdgen::cli::builders {

namespace {

// A setting in effect only with a ControlNet: identity and record null without one.
void control_only(Setting& s) {
  auto id = s.identity;
  s.identity = [id](const Job& j, const Ctx& c) { return j.controls.empty() ? Json() : id(j, c); };
  s.record = s.identity;
}

std::string net_name(const std::string& file) {
  std::string v = file;
  while (v.size() > 1 && v.back() == '/') v.pop_back();
  return fs::path(v).stem().string();
}

// A1111's ControlNet extension writes one `ControlNet N: "Module: ..., Model: ..., Weight: ..., Guidance
// Start: ..., Guidance End: ..."` per unit; the table has one label per setting, so the value of the
// label "ControlNet 0" carries the later units' labels after it.
std::string png_units(const Job& j) {
  std::string out;
  for (size_t i = 0; i < j.controls.size(); ++i) {
    const std::string module = j.control_preprocess == ControlPreprocess::Canny ? "canny" : "none";
    if (i) out += ", ControlNet " + std::to_string(i) + ": ";
    out += "\"Module: " + module + ", Model: " + clean_name(net_name(j.controls[i].file)) +
           ", Weight: " + number_text(j.controls[i].scale) + ", Guidance Start: " + number_text(j.control_start) +
           ", Guidance End: " + number_text(j.control_end) + "\"";
  }
  return out;
}

}  // namespace

void add_control_settings(std::vector<Setting>& t) {
  Setting control = base("--control", "control", SettingType::TextList, "controls",
                         "ControlNet FILE[:SCALE] (diffusers ControlNetModel folder, or a .safetensors/.pth in either "
                         "naming), conditioning scale 1 by default; repeatable, paired in order with --control-image");
  control.parse = [](Job& j, const std::string& t) {
    const LoraSpec s = parse_file_scale("--control", t);
    j.controls.push_back({t, s.file, s.scale});
  };
  control.from_json = [](Job& j, const Json& v) {  // a line's list replaces the command line's
    j.controls.clear();
    for (const std::string& x : v.is_string() ? std::vector<std::string>{v.get<std::string>()}
                                              : v.get<std::vector<std::string>>()) {
      const LoraSpec s = parse_file_scale("--control", x);
      j.controls.push_back({x, s.file, s.scale});
    }
  };
  control.identity = [](const Job& j, const Ctx&) {
    if (j.controls.empty()) return Json();
    Json a = Json::array();
    for (const ControlArg& c : j.controls) a.push_back(c.spec);
    return a;
  };
  control.record = [](const Job& j, const Ctx&) {
    if (j.controls.empty()) return Json();
    Json a = Json::array();
    for (const ControlArg& c : j.controls) a.push_back({{"file", c.file}, {"scale", c.scale}});
    return a;
  };
  control.problem = [](const Job& j) -> std::string {
    if (j.controls.size() == j.control_images.size()) return "";
    return "--control needs one --control-image each, in order: " + std::to_string(j.controls.size()) +
           " --control, " + std::to_string(j.control_images.size()) + " --control-image";
  };
  t.push_back(png(control, "ControlNet 0", 160, [](const Job& j, const Ctx&) { return png_units(j); }));
  t.back().a1111_read = false;  // model names without their folders: give --control

  Setting image = base("--control-image", "control_image", SettingType::TextList, "control_images",
                       "The control image of the --control at the same place (an edge map, depth map, pose, ... "
                       "as the ControlNet expects it, or a picture with --control-preprocess); resized to the "
                       "image's size with Lanczos; repeatable");
  image.parse = [](Job& j, const std::string& t) { j.control_images.push_back(t); };
  image.from_json = [](Job& j, const Json& v) {
    j.control_images = v.is_string() ? std::vector<std::string>{v.get<std::string>()} : v.get<std::vector<std::string>>();
  };
  image.identity = [](const Job& j, const Ctx&) {
    if (j.control_images.empty()) return Json();
    Json a = Json::array();
    for (const std::string& f : j.control_images) a.push_back(picture_identity(f));
    return a;
  };
  image.record = [](const Job& j, const Ctx&) { return j.control_images.empty() ? Json() : Json(j.control_images); };
  image.problem = [](const Job& j) -> std::string {
    try {
      for (const std::string& f : j.control_images) read_image(f, "--control-image");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  t.push_back(image);

  Setting start = real("--control-start", "control_start", +[](Job& j) -> double& { return j.control_start; }, 0, 1,
                       "ControlNet: the share of the steps before it starts guiding (diffusers' "
                       "control_guidance_start)");
  auto range = start.problem;
  start.problem = [range](const Job& j) -> std::string {
    if (std::string why = range(j); !why.empty()) return why;
    if (j.control_start <= j.control_end) return "";
    return "--control-start " + number_text(j.control_start) + " must not be above --control-end " +
           number_text(j.control_end);
  };
  control_only(start);
  t.push_back(start);
  Setting end = real("--control-end", "control_end", +[](Job& j) -> double& { return j.control_end; }, 0, 1,
                     "ControlNet: the share of the steps after which it stops guiding (control_guidance_end)");
  control_only(end);
  t.push_back(end);
  Setting guess = flag("--guess-mode", "guess_mode", "guess_mode", true, +[](Job& j) -> bool& { return j.guess_mode; },
                       "ControlNet guess mode: the nets see the prompt's half only, their residuals scaled from 0.1 "
                       "(the first) to 1 (the last), so the control image leads (diffusers' guess_mode)");
  control_only(guess);
  t.push_back(guess);
  Setting pre = word("--control-preprocess", "control_preprocess",
                     +[](Job& j) -> ControlPreprocess& { return j.control_preprocess; },
                     {{"none", ControlPreprocess::None}, {"canny", ControlPreprocess::Canny}},
                     "What becomes of the control images first: none (used as given), canny (OpenCV's Canny "
                     "edges with --canny-low/--canny-high, for a canny ControlNet)");
  control_only(pre);
  t.push_back(pre);
  for (const bool low : {true, false}) {
    Setting s = low ? integer("--canny-low", "canny_low", +[](Job& j) -> int& { return j.canny_low; }, 0, 1000,
                              "Canny's lower hysteresis threshold (cv2.Canny's threshold1)")
                    : integer("--canny-high", "canny_high", +[](Job& j) -> int& { return j.canny_high; }, 0, 1000,
                              "Canny's upper hysteresis threshold (threshold2)");
    auto id = s.identity;
    s.identity = [id](const Job& j, const Ctx& c) {
      return j.controls.empty() || j.control_preprocess != ControlPreprocess::Canny ? Json() : id(j, c);
    };
    s.record = s.identity;
    t.push_back(s);
  }
}

}  // namespace sdgen::cli::builders
