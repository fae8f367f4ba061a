// The settings table (settings.h) and the walks over it: CLI11 registration, prompt-file lines,
// validation, the --json record, the manifest identity and the PNG parameters.
#include "cli/settings.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/batch.h"
#include "cli/setting_builders.h"
#include "core/decimal.h"
#include "core/sha256.h"
#include "io/image_blur.h"
#include "io/image_read.h"
#include "io/model_hashes.h"
#include "sdgen/error.h"

namespace fs = std::filesystem;

namespace sdgen::cli {

namespace {

using namespace builders;

// The settings of the prompts and how they are read, in --help order.
void add_prompt_settings(std::vector<Setting>& t) {
  auto prompt = text("-p,--prompt", "prompt", "prompt", +[](Job& j) -> std::string& { return j.prompt; }, "Text prompt");
  prompt.in_record = false;  // the record's subject, at its top level
  t.push_back(prompt);
  auto negative = text("-n,--negative-prompt", "negative_prompt", "negative_prompt",
                       +[](Job& j) -> std::string& { return j.negative_prompt; }, "What the image should not show");
  negative.in_record = false;
  t.push_back(negative);
  // SDXL's second encoder (OpenCLIP bigG) reads its own text where given, as diffusers' prompt_2 and
  // negative_prompt_2 (and ComfyUI's text_l/text_g): in the identity, the record and the PNG only
  // when given, so jobs without them keep theirs.
  const struct {
    const char *flags, *key, *label, *help;
    Field<std::string> field;
  } second[] = {
      {"--prompt-2", "prompt_2", "Prompt 2",
       "SDXL: the second text encoder's prompt (diffusers' prompt_2; default: --prompt)",
       +[](Job& j) -> std::string& { return j.prompt_2; }},
      {"--negative-prompt-2", "negative_prompt_2", "Negative prompt 2",
       "SDXL: the second text encoder's negative prompt (diffusers' negative_prompt_2; default: --negative-prompt)",
       +[](Job& j) -> std::string& { return j.negative_prompt_2; }},
  };
  for (const auto& e : second) {
    Setting s = text(e.flags, e.key, e.key, e.field, e.help);
    const Field<std::string> f = e.field;
    s.identity = [f](const Job& j, const Ctx&) { return get(f, j).empty() ? Json() : Json(get(f, j)); };
    // JSON-quoted, as A1111 quotes a value holding commas; --from-png unquotes it.
    t.push_back(png(s, e.label, 200 + (int)(&e - second),
                    [f](const Job& j, const Ctx&) { return get(f, j).empty() ? std::string() : Json(get(f, j)).dump(); }));
  }
  t.push_back(png(flag("--no-emphasis", "emphasis", "emphasis", false, +[](Job& j) -> bool& { return j.emphasis; },
                       "Take the prompts literally: no (emphasis), [de-emphasis], (text:weight) or BREAK"),
                  "Emphasis", 110, [](const Job& j, const Ctx&) { return j.emphasis ? "" : "off"; }));
  t.back().from_a1111 = [](Job& j, const std::string& v) {  // ours "off"; A1111's "None", "Original"
    if (v != "off" && v != "None" && v != "Original") throw_usage("not one of off, None, Original");
    j.emphasis = v == "Original";
  };
}

// SDXL's micro-conditioning, diffusers' original_size, crops_coords_top_left, target_size and their
// negative_* twins: sizes as WIDTHxHEIGHT (sd-gen's order, as --width/--height and A1111's Size),
// crops as TOP,LEFT (diffusers' order). Recorded only when given; other models ignore them.
void add_size_conditioning(std::vector<Setting>& t) {
  struct Pair {
    const char* flags;
    const char* key;
    Field<std::array<int, 2>> field;
    bool crop;
    const char* help;
  };
  const Pair pairs[] = {
      {"--original-size", "original_size", +[](Job& j) -> std::array<int, 2>& { return j.original_size; }, false,
       "SDXL: the size the model is told the picture had before any crop, WIDTHxHEIGHT (default: --width x --height)"},
      {"--crop-coords", "crop_coords", +[](Job& j) -> std::array<int, 2>& { return j.crop_coords; }, true,
       "SDXL: the crop's top-left corner the model is told of, TOP,LEFT (default: 0,0)"},
      {"--target-size", "target_size", +[](Job& j) -> std::array<int, 2>& { return j.target_size; }, false,
       "SDXL: the target size the model is told of, WIDTHxHEIGHT (default: --width x --height)"},
      {"--negative-original-size", "negative_original_size",
       +[](Job& j) -> std::array<int, 2>& { return j.negative_original_size; }, false,
       "SDXL: --original-size of the negative prompt's rows (default: the negative rows take the prompt's sizes)"},
      {"--negative-crop-coords", "negative_crop_coords",
       +[](Job& j) -> std::array<int, 2>& { return j.negative_crop_coords; }, true,
       "SDXL: --crop-coords of the negative prompt's rows (default 0,0 when a negative size is given)"},
      {"--negative-target-size", "negative_target_size",
       +[](Job& j) -> std::array<int, 2>& { return j.negative_target_size; }, false,
       "SDXL: --target-size of the negative prompt's rows"},
  };
  for (const Pair& p : pairs) {
    Setting s = base(p.flags, p.key, SettingType::Text, p.key, p.help);
    const Field<std::array<int, 2>> f = p.field;
    const bool crop = p.crop;
    const std::string flag = std::string(p.flags);
    s.parse = [f, crop, flag](Job& j, const std::string& t) {
      const char sep = crop ? ',' : 'x';
      const size_t at = t.find(sep);
      if (at == std::string::npos)
        throw_usage(flag + ": '" + t + "' is not " + (crop ? "TOP,LEFT" : "WIDTHxHEIGHT"));
      const int a = parse_int(flag, t.substr(0, at)), b = parse_int(flag, t.substr(at + 1));
      const int lo = crop ? 0 : 1;
      if (a < lo || b < lo || a > 16384 || b > 16384)
        throw_usage(flag + ": '" + t + "' must be two numbers in " + std::to_string(lo) + "..16384");
      f(j) = {a, b};
    };
    // Given only when set: jobs made before the option existed keep their identity.
    s.identity = [f, crop](const Job& j, const Ctx&) {
      const std::array<int, 2>& v = get(f, j);
      if (v[0] < 0) return Json();
      return Json(std::to_string(v[0]) + (crop ? "," : "x") + std::to_string(v[1]));
    };
    t.push_back(s);
  }
}

// The settings of how many images, of what size, from which noise, in --help order.
void add_image_settings(std::vector<Setting>& t) {
  t.push_back(png(integer("-b,--batch", "batch", +[](Job& j) -> int& { return j.batch; }, 1, kMaxBatch, "Images per prompt"),
                  "Batch size", 160,
                  [](const Job& j, const Ctx&) { return j.batch > 1 ? std::to_string(j.batch) : std::string(); }));
  t.push_back(png(integer("--steps", "steps", +[](Job& j) -> int& { return j.steps; }, 1, kMaxSteps, "Sampling steps"),
                  "Steps", 10, [](const Job& j, const Ctx&) { return std::to_string(j.steps); }));
  t.push_back(png(real("-g,--guidance", "guidance", +[](Job& j) -> float& { return j.guidance; }, 0, 100,
                       "Classifier-free guidance scale"),
                  "CFG scale", 30, [](const Job& j, const Ctx&) { return number_text(j.guidance); }));
  Setting rescale = real("--guidance-rescale", "guidance_rescale", +[](Job& j) -> float& { return j.guidance_rescale; },
                         0, 1,
                         "diffusers' guidance_rescale: pull the guided output toward the conditional one's spread, "
                         "0..1 (0.7 for v-prediction models; 0: off)");
  // Recorded only when used: jobs made before the option existed keep their identity.
  rescale.identity = [](const Job& j, const Ctx&) {
    return j.guidance_rescale != 0.0f ? Json(j.guidance_rescale) : Json();
  };
  rescale.record = rescale.identity;
  // The label A1111's CFG Rescale extension writes.
  t.push_back(png(rescale, "CFG Rescale phi", 35, [](const Job& j, const Ctx&) {
    return j.guidance_rescale != 0.0f ? number_text(j.guidance_rescale) : std::string();
  }));

  Setting seed = base("-s,--seed", "seed", SettingType::Seed, "seed",
                      "Random seed 0..2^64-1 (random when absent or -1, then printed)");
  seed.record_name = "base_seed";
  seed.parse = [](Job& j, const std::string& t) { j.seed = parse_seed_text(t, "--seed"); };
  seed.from_json = [](Job& j, const Json& v) { j.seed = json_seed(v, ""); };
  seed.identity = [](const Job&, const Ctx& c) { return Json(c.base_seed); };
  // Image i of per-image seeds is seeded S+i: past 2^64-1 it would wrap to 0 and repeat seeds.
  seed.problem = [](const Job& j) -> std::string {
    if (j.seed_mode != SeedMode::PerImage || !j.seed || *j.seed <= UINT64_MAX - (uint64_t)(j.batch - 1)) return "";
    return "--seed " + std::to_string(*j.seed) + " with --batch " + std::to_string(j.batch) +
           " and --seed-mode per-image seeds image " + std::to_string(j.batch - 1) + " past 2^64-1";
  };
  seed.a1111 = "Seed";  // written by parameters_text: the image's own seed
  t.push_back(seed);

  auto side = [](int v) {
    return v % 64 == 0 && v >= 64 && v <= kMaxSide
               ? std::string()
               : "must be a multiple of 64 between 64 and " + std::to_string(kMaxSide);
  };
  // Given or not: where not, the model's default side replaces 512 (validate_job_for_model, cli/options.h).
  auto mark_given = [](Setting& s, bool Job::*given) {
    auto parse = s.parse;
    s.parse = [parse, given](Job& j, const std::string& t) {
      parse(j, t);
      j.*given = true;
    };
    auto from_json = s.from_json;
    s.from_json = [from_json, given](Job& j, const Json& v) {
      from_json(j, v);
      j.*given = true;
    };
  };
  t.push_back(png(integer("-W,--width", "width", +[](Job& j) -> int& { return j.width; }, 64, kMaxSide,
                          "Image width, a multiple of 64 (default: the model's, 1024 for SDXL, else 512)", side),
                  "Size", 50,
                  [](const Job& j, const Ctx&) { return std::to_string(j.width) + "x" + std::to_string(j.height); }));
  t.back().from_a1111 = [](Job& j, const std::string& v) {  // "WxH"
    const size_t x = v.find('x');
    if (x == std::string::npos) throw_usage("not WIDTHxHEIGHT");
    j.width = parse_int("width", v.substr(0, x));
    j.height = parse_int("height", v.substr(x + 1));
    j.width_given = j.height_given = true;
  };
  mark_given(t.back(), &Job::width_given);
  t.push_back(integer("-H,--height", "height", +[](Job& j) -> int& { return j.height; }, 64, kMaxSide,
                      "Image height, a multiple of 64 (default: the model's, 1024 for SDXL, else 512)", side));
  mark_given(t.back(), &Job::height_given);
  add_size_conditioning(t);
}

// An input picture in the job identity: its file and the SHA-256 of its bytes (a picture the job
// cannot read is refused before any identity is taken; without its bytes, the name alone).
// A setting that only inpainting uses: its identity left out without --mask or at its default, and
// a non-default value without --mask refused.
void inpaint_only(Setting& s, std::function<bool(const Job&)> is_default) {
  auto id = s.identity;
  s.identity = [id, is_default](const Job& j, const Ctx& c) {
    return j.mask.empty() || is_default(j) ? Json() : id(j, c);
  };
  auto check = s.problem;
  const std::string flag = s.option();
  s.problem = [check, is_default, flag](const Job& j) -> std::string {
    if (std::string why = check ? check(j) : ""; !why.empty()) return why;
    if (j.mask.empty() && !is_default(j)) return flag + " needs --mask (it is an inpainting option)";
    return "";
  };
}

// The inpainting options (pipeline/inpaint_area.h), in --help order.
void add_inpaint_settings(std::vector<Setting>& t) {
  Setting blur = integer("--mask-blur", "mask_blur", +[](Job& j) -> int& { return j.mask_blur; }, 0, 256,
                         "Inpainting: blur the mask by this many pixels first (PIL's GaussianBlur, as A1111's Mask "
                         "blur and diffusers' mask_processor.blur); 0: none");
  inpaint_only(blur, [](const Job& j) { return j.mask_blur == 0; });
  t.push_back(png(blur, "Mask blur", 66, [](const Job& j, const Ctx&) {
    return !j.mask.empty() && j.mask_blur > 0 ? std::to_string(j.mask_blur) : std::string();
  }));
  Setting area = word("--inpaint-area", "inpaint_area", +[](Job& j) -> bool& { return j.inpaint_masked; },
                      {{"whole", false}, {"masked", true}},
                      "Inpainting: whole (the picture at --width x --height) or masked (only the mask's box plus "
                      "--inpaint-padding, generated at --width x --height and pasted back; the images keep the "
                      "picture's size), as A1111's Inpaint area and diffusers' padding_mask_crop");
  inpaint_only(area, [](const Job& j) { return !j.inpaint_masked; });
  auto area_check = area.problem;
  area.problem = [area_check](const Job& j) -> std::string {
    if (std::string why = area_check(j); !why.empty() || !j.inpaint_masked) return why;
    try {
      if (mask_is_empty(grey_of(read_image(j.mask, "--mask"))))
        return "--mask " + j.mask + " is all black: --inpaint-area masked has no region to repaint";
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  t.push_back(png(area, "Inpaint area", 67,
                  [](const Job& j, const Ctx&) { return j.inpaint_masked ? "Only masked" : ""; }));
  t.back().from_a1111 = [](Job& j, const std::string& v) {
    if (v != "Only masked" && v != "Whole picture") throw_usage("not one of Only masked, Whole picture");
    j.inpaint_masked = v == "Only masked";
  };
  Setting pad = integer("--inpaint-padding", "inpaint_padding", +[](Job& j) -> int& { return j.inpaint_padding; }, 0,
                        kMaxImageSide, "Inpainting with --inpaint-area masked: pixels added around the mask's box "
                        "(A1111's Only masked padding); default 32");
  inpaint_only(pad, [](const Job& j) { return j.inpaint_padding == 32; });
  auto pad_check = pad.problem;
  pad.problem = [pad_check](const Job& j) -> std::string {
    if (std::string why = pad_check(j); !why.empty()) return why;
    if (j.inpaint_padding != 32 && !j.inpaint_masked) return "--inpaint-padding needs --inpaint-area masked";
    return "";
  };
  t.push_back(png(pad, "Masked area padding", 68, [](const Job& j, const Ctx&) {
    return j.inpaint_masked ? std::to_string(j.inpaint_padding) : std::string();
  }));
  Setting fill = word("--inpaint-fill", "inpaint_fill", +[](Job& j) -> bool& { return j.inpaint_latent_noise; },
                      {{"original", false}, {"latent-noise", true}},
                      "Inpainting: what the masked part starts from: original (the picture) or latent-noise (fresh "
                      "noise in its latents, A1111's Masked content)");
  inpaint_only(fill, [](const Job& j) { return !j.inpaint_latent_noise; });
  t.push_back(png(fill, "Masked content", 69,
                  [](const Job& j, const Ctx&) { return j.inpaint_latent_noise ? "latent noise" : ""; }));
  t.back().from_a1111 = [](Job& j, const std::string& v) {
    if (v != "original" && v != "latent noise") throw_usage("not one of original, latent noise");
    j.inpaint_latent_noise = v == "latent noise";
  };
}

// The settings of a picture to start from (img2img), in --help order.
void add_input_settings(std::vector<Setting>& t) {
  Setting init = text("--init-image", "init_image", "init_image", +[](Job& j) -> std::string& { return j.init_image; },
                      "Start from this picture (img2img): PNG, JPEG, BMP, GIF, TGA, PSD or PNM, resized to "
                      "--width x --height by --resize-mode");
  // The picture's content belongs to the job: a resumed job with another picture is another job.
  init.identity = [](const Job& j, const Ctx&) { return picture_identity(j.init_image); };
  init.record = [](const Job& j, const Ctx&) { return j.init_image.empty() ? Json() : Json(j.init_image); };
  // Read now, so a bad picture stops the run before any model loads.
  init.problem = [](const Job& j) -> std::string {
    if (j.init_image.empty()) return "";
    try {
      read_image(j.init_image, "--init-image");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  t.push_back(init);
  Setting strength = real("--strength", "strength", +[](Job& j) -> double& { return j.strength; }, 0, 1,
                          "img2img: how much of the picture is redrawn, 0..1 (diffusers' strength, A1111's denoising "
                          "strength): the first steps - int(steps*strength) steps are skipped");
  strength.identity = [](const Job& j, const Ctx&) { return j.init_image.empty() ? Json() : Json(j.strength); };
  auto range = strength.problem;
  strength.problem = [range](const Job& j) -> std::string {
    if (std::string why = range(j); !why.empty() || j.init_image.empty()) return why;
    if (j.steps * j.strength < 1.0)
      return "--strength " + number_text(j.strength) + " with --steps " + std::to_string(j.steps) +
             " leaves no step to run (int(steps*strength) = 0); raise either";
    return "";
  };
  // A1111 writes the hires pass's denoising strength under the same label.
  t.push_back(png(strength, "Denoising strength", 65, [](const Job& j, const Ctx&) {
    return !j.init_image.empty() ? number_text(j.strength)
           : job_hires(j).enabled() ? number_text(j.hires_denoise)
                                    : "";
  }));
  Setting mask = text("--mask", "mask", "mask", +[](Job& j) -> std::string& { return j.mask; },
                      "Inpainting: repaint where this picture is white (>= 128 grey), keep where black; the "
                      "--init-image's size");
  mask.identity = [](const Job& j, const Ctx&) { return picture_identity(j.mask); };
  mask.record = [](const Job& j, const Ctx&) { return j.mask.empty() ? Json() : Json(j.mask); };
  mask.problem = [](const Job& j) -> std::string {
    if (j.mask.empty()) return "";
    if (j.init_image.empty()) return "--mask needs --init-image (the picture to repaint)";
    try {
      const RgbImage m = read_image(j.mask, "--mask");
      const RgbImage i = read_image(j.init_image, "--init-image");
      if (m.width != i.width || m.height != i.height)
        return "--mask " + j.mask + " is " + std::to_string(m.width) + "x" + std::to_string(m.height) +
               ", --init-image " + j.init_image + " is " + std::to_string(i.width) + "x" + std::to_string(i.height) +
               ": they must be the same size";
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  t.push_back(mask);
  add_inpaint_settings(t);
  Setting resize = word("--resize-mode", "resize_mode", +[](Job& j) -> ResizeMode& { return j.resize_mode; },
                   {{"just", ResizeMode::Just}, {"crop", ResizeMode::Crop}, {"fill", ResizeMode::Fill}},
                   "img2img: how a picture of another size becomes --width x --height: just (stretch), crop (cover "
                   "and cut), fill (fit and extend the edges), as A1111 and diffusers");
  auto resize_identity = resize.identity;
  resize.identity = [resize_identity](const Job& j, const Ctx& c) {
    return j.init_image.empty() ? Json() : resize_identity(j, c);
  };
  t.push_back(resize);
}

// A hires setting's identity only for a job with a hires pass (null, left out, otherwise).
void hires_identity_when_on(Setting& s) {
  auto id = s.identity;
  s.identity = [id](const Job& j, const Ctx& c) { return job_hires(j).enabled() ? id(j, c) : Json(); };
}

// The settings of the hires fix (pipeline/hires.h), in --help order.
void add_hires_settings(std::vector<Setting>& t) {
  Setting scale = real("--hires-scale", "hires_scale", +[](Job& j) -> double& { return j.hires_scale; }, 0, 4,
                       "Hires fix: render at --width x --height, upscale by this factor (A1111's int(side*scale), "
                       "a multiple of 64), then img2img at that size; 0: none");
  auto range = scale.problem;
  scale.problem = [range](const Job& j) -> std::string {
    if (std::string why = range(j); !why.empty()) return why;
    const bool by_size = j.hires_width > 0 || j.hires_height > 0;
    if (j.hires_scale > 0 && by_size) return "--hires-scale and --hires-width/--hires-height: give one of them";
    if (j.hires_width > 0 && j.hires_height > 0 && (int64_t)j.hires_width * j.height != (int64_t)j.hires_height * j.width)
      return "--hires-width " + std::to_string(j.hires_width) + " --hires-height " + std::to_string(j.hires_height) +
             " has another aspect ratio than " + std::to_string(j.width) + "x" + std::to_string(j.height) +
             "; give one of them (the other follows)";
    const HiresParams h = job_hires(j);
    if (!h.enabled()) return "";
    if (!j.init_image.empty()) return "the hires fix starts from text to image: not with --init-image";
    auto ok = [](int v) { return v % 64 == 0 && v >= 64 && v <= kMaxSide; };
    if (!ok(h.width) || !ok(h.height))
      return "the hires size " + std::to_string(h.width) + "x" + std::to_string(h.height) + " (from " +
             std::to_string(j.width) + "x" + std::to_string(j.height) +
             (by_size ? "" : " by --hires-scale " + number_text(j.hires_scale)) +
             ") must be multiples of 64 between 64 and " + std::to_string(kMaxSide);
    return "";
  };
  hires_identity_when_on(scale);
  t.push_back(png(scale, "Hires upscale", 115, [](const Job& j, const Ctx&) {
    return j.hires_scale > 0 ? number_text(j.hires_scale) : "";
  }));
  Setting width = integer("--hires-width", "hires_width", +[](Job& j) -> int& { return j.hires_width; }, 0, kMaxSide,
                          "Hires fix: the second pass's width, a multiple of 64 (0: from --hires-height or none)");
  hires_identity_when_on(width);
  t.push_back(png(width, "Hires resize", 115, [](const Job& j, const Ctx&) {
    return j.hires_width > 0 || j.hires_height > 0
               ? std::to_string(j.hires_width) + "x" + std::to_string(j.hires_height)
               : std::string();
  }));
  Setting height = integer("--hires-height", "hires_height", +[](Job& j) -> int& { return j.hires_height; }, 0,
                           kMaxSide, "Hires fix: the second pass's height, a multiple of 64 (0: from --hires-width or none)");
  hires_identity_when_on(height);
  t.push_back(height);
  Setting steps = integer("--hires-steps", "hires_steps", +[](Job& j) -> int& { return j.hires_steps; }, 0, kMaxSteps,
                          "Hires fix: the second pass's steps (0: as --steps)");
  hires_identity_when_on(steps);
  t.push_back(png(steps,
                  "Hires steps", 116, [](const Job& j, const Ctx&) {
                    return job_hires(j).enabled() && j.hires_steps > 0 ? std::to_string(j.hires_steps) : "";
                  }));
  Setting denoise = real("--hires-denoise", "hires_denoise", +[](Job& j) -> double& { return j.hires_denoise; }, 0, 1,
                         "Hires fix: the second pass's strength, 0..1 (as --strength: the first steps - "
                         "int(steps*S) of its steps are skipped); default 0.7");
  auto denoise_range = denoise.problem;
  denoise.problem = [denoise_range](const Job& j) -> std::string {
    if (std::string why = denoise_range(j); !why.empty()) return why;
    const HiresParams h = job_hires(j);
    const int steps = h.steps > 0 ? h.steps : j.steps;
    if (h.enabled() && steps * j.hires_denoise < 1.0)
      return "--hires-denoise " + number_text(j.hires_denoise) + " with " + std::to_string(steps) +
             " hires steps leaves no step to run (int(steps*denoise) = 0); raise either";
    return "";
  };
  hires_identity_when_on(denoise);
  t.push_back(denoise);
  std::vector<std::pair<std::string, HiresUpscaler>> upscalers;
  for (HiresUpscaler u : {HiresUpscaler::Latent, HiresUpscaler::LatentNearest, HiresUpscaler::LatentBicubic,
                          HiresUpscaler::Lanczos})
    upscalers.emplace_back(hires_upscaler_name(u), u);
  Setting upscaler = word("--hires-upscaler", "hires_upscaler",
                          +[](Job& j) -> HiresUpscaler& { return j.hires_upscaler; }, upscalers,
                          "Hires fix: latent (bilinear), latent-nearest, latent-bicubic (the first pass's latents "
                          "interpolated, A1111's Latent modes) or lanczos (its images resized, then encoded); default latent");
  hires_identity_when_on(upscaler);
  t.push_back(png(upscaler, "Hires upscaler", 117, [](const Job& j, const Ctx&) {
                    return job_hires(j).enabled() ? hires_upscaler_a1111(j.hires_upscaler) : "";
                  }));
}

// The settings of the sampler and the noise source, in --help order.
void add_sampler_settings(std::vector<Setting>& t) {
  std::vector<std::pair<std::string, SamplerKind>> kinds;
  for (const SamplerInfo& i : samplers()) kinds.emplace_back(i.name, i.kind);
  static const std::string sampler_help = "Sampler: " + sampler_names();
  Setting sampler = word("--sampler", "sampler", +[](Job& j) -> SamplerKind& { return j.sampler.kind; }, kinds,
                         sampler_help.c_str());
  sampler.parse = [](Job& j, const std::string& t) {  // the registry's own words for an unknown one
    const SamplerInfo* i = find_sampler(t);
    if (!i) throw_usage("--sampler '" + t + "' is not available (" + sampler_names() + ")");
    j.sampler.kind = i->kind;
  };
  // The sampler registry checks the three together (karras offered, η DDIM's).
  sampler.problem = [](const Job& j) { return sampler_problem(j.sampler); };
  sampler.from_a1111 = [](Job& j, const std::string& v) {  // "DPM++ 2M Karras": sampler and schedule
    if (!from_a1111_sampler_name(v, &j.sampler)) throw_usage("not a sampler sd-gen has");
  };
  t.push_back(png(sampler, "Sampler", 20, [](const Job& j, const Ctx&) { return a1111_sampler_name(j.sampler); }));
  Setting schedule = word("--schedule", "schedule", +[](Job& j) -> Schedule& { return j.sampler.schedule; },
                          {{"default", Schedule::Default}, {"karras", Schedule::Karras}},
                          "Sigma schedule: default or karras (lms, euler, heun, dpm2, dpmpp_*, unipc)");
  // A1111 >= 1.8 also writes "Schedule type" (ours is in the Sampler name); read after the sampler.
  schedule.a1111 = "Schedule type";
  schedule.from_a1111 = [](Job& j, const std::string& v) {
    if (v == "Karras") j.sampler.schedule = Schedule::Karras;
    else if (v != "Automatic") throw_usage("not one of Automatic, Karras");
  };
  t.push_back(schedule);
  Setting eta = real("--eta", "eta", +[](Job& j) -> float& { return j.sampler.eta; }, 0, 1,
                     "DDIM's eta: 0 deterministic, 1 as DDPM (ddim only)");
  eta.problem = nullptr;  // sampler_problem's
  t.push_back(png(eta, "Eta DDIM", 100,
                  [](const Job& j, const Ctx&) { return j.sampler.eta != 0.0f ? number_text(j.sampler.eta) : ""; }));
  t.push_back(png(word("--rng", "rng", +[](Job& j) -> RngKind& { return j.rng; },
                       {{"torch-cpu", RngKind::TorchCpu}, {"philox", RngKind::Philox}},
                       "Noise: torch-cpu (torch.randn on a CPU generator, as diffusers) or philox (torch.randn "
                       "on CUDA, A1111's NV), on any device"),
                  "RNG", 80, [](const Job& j, const Ctx&) { return j.rng == RngKind::Philox ? "NV" : "CPU"; }));
  t.back().from_a1111 = [](Job& j, const std::string& v) {  // A1111's GPU is torch's CUDA Philox, NV its CPU copy
    if (v != "NV" && v != "GPU" && v != "CPU") throw_usage("not one of CPU, GPU, NV");
    j.rng = v == "CPU" ? RngKind::TorchCpu : RngKind::Philox;
  };
  t.back().a1111_absent = "GPU";  // A1111's default, not written
  t.push_back(png(word("--seed-mode", "seed_mode", +[](Job& j) -> SeedMode& { return j.seed_mode; },
                       {{"batch", SeedMode::Batch}, {"per-image", SeedMode::PerImage}},
                       "batch: one generator for the whole batch (diffusers); per-image: image i has seed+i (A1111)"),
                  "Seed mode", 90, [](const Job& j, const Ctx&) { return seed_mode_name(j.seed_mode); }));
  t.back().a1111_absent = "per-image";  // A1111 seeds image i with seed+i
}

// The settings of how the model runs (precision, device, text-encoder depth, VAE), in --help order.
void add_model_settings(std::vector<Setting>& t) {
  t.push_back(png(word("--precision", "precision", +[](Job& j) -> DType& { return j.precision; },
                       {{"fp32", DType::F32}, {"fp16", DType::F16}, {"bf16", DType::BF16}},
                       "fp32, fp16 or bf16 (mixed: 16-bit storage, fp32 accumulation)"),
                  "Precision", 70,
                  [](const Job& j, const Ctx&) { return std::string(dtype_name(j.precision)); }));

  Setting device = base("--device", "device", SettingType::Word, "device", "auto, cpu, cuda or cuda:N (GPU N)");
  device.words = {"auto", "cpu", "cuda", "cuda:N"};
  device.parse = [](Job& j, const std::string& t) {
    DeviceSpec d;
    if (t == "auto") d.kind = DeviceSpec::Auto;
    else if (t == "cpu") d.kind = DeviceSpec::Cpu;
    else if (t == "cuda") d.kind = DeviceSpec::Cuda;
    else if (cuda_ordinal(t) >= 0) d.kind = DeviceSpec::Cuda, d.ordinal = cuda_ordinal(t);
    else throw_usage("--device '" + t + "' is not one of auto, cpu, cuda, cuda:N");
    j.device = d;
  };
  device.identity = [](const Job& j, const Ctx&) { return Json(j.device.text()); };
  device.record = [](const Job&, const Ctx& c) { return Json(device_name(c.device)); };  // where it ran
  device.in_identity = false;  // the same images on any device
  t.push_back(device);

  t.push_back(png(integer("--clip-skip", "clip_skip", +[](Job& j) -> int& { return j.clip_skip; }, 1, 48,
                          "CLIP layers to skip from the end, as A1111's Clip skip (1: none; diffusers' clip_skip is N-1)",
                          [](int v) {
                            return v >= 1 && v <= 48 ? std::string()
                                                     : "must be at least 1 (1: the last layer; SD v1 has 12)";
                          }),
                  "Clip skip", 120,
                  [](const Job& j, const Ctx&) { return j.clip_skip > 1 ? std::to_string(j.clip_skip) : ""; }));
  Setting cleanup = word("--text-cleanup", "text_cleanup", +[](Job& j) -> TextCleanup& { return j.text_cleanup; },
                         {{"ftfy", TextCleanup::Ftfy}, {"basic", TextCleanup::Basic}},
                         "Prompt cleanup before tokenizing: ftfy (transformers 4 with ftfy, A1111: mojibake, HTML "
                         "entities, curly quotes, full-width text fixed) or basic (transformers 5, current diffusers: "
                         "NFC, whitespace, lowercase only)");
  // Recorded only when basic: jobs made before the option existed keep their identity.
  cleanup.identity = [](const Job& j, const Ctx&) {
    return j.text_cleanup == TextCleanup::Basic ? Json("basic") : Json();
  };
  cleanup.record = cleanup.identity;
  // Not an A1111 label (A1111 always runs ftfy); written for basic so --from-png repeats the run.
  // Not in the PNG parameters: A1111 reads it from the model's config file, not the image.
  t.push_back(word("--prediction-type", "prediction_type", +[](Job& j) -> std::string& { return j.prediction_type; },
                   {{"epsilon", "epsilon"}, {"v_prediction", "v_prediction"}},
                   "What the UNet predicts, as diffusers' prediction_type: epsilon (SD 1.x, SD 2.x 512-base) or "
                   "v_prediction (SD 2.x 768-v); default: the model's scheduler config, epsilon when it says nothing"));
  t.push_back(png(cleanup, "Text cleanup", 121,
                  [](const Job& j, const Ctx&) { return j.text_cleanup == TextCleanup::Basic ? "basic" : ""; }));
  Setting vae_batch = integer("--vae-batch", "vae_batch", +[](Job& j) -> int& { return j.vae_batch; }, 1, kMaxBatch,
                              "Images per VAE decode pass: 1 keeps the memory peak lowest, more is faster on a GPU");
  vae_batch.in_identity = false;  // how the images are decoded, not which
  t.push_back(vae_batch);
  t.push_back(png(text("--vae", "vae", "vae", +[](Job& j) -> std::string& { return j.vae; },
                       "VAE replacing the model's: .safetensors file (LDM names) or diffusers vae folder"),
                  "VAE", 130, [](const Job& j, const Ctx&) -> std::string {
                    if (j.vae.empty()) return "";
                    std::string v = j.vae;
                    while (v.size() > 1 && v.back() == '/') v.pop_back();
                    return fs::path(v).filename().string();
                  }));
  t.back().a1111_read = false;  // a file name without its folder: give --vae
  // No PNG label: A1111 records no tiny decoder, and its "VAE" names a full VAE to load, which a
  // TAESD file is not. The record (and with it the image's identity) keeps the path.
  Setting vae_tiny = text("--vae-tiny", "vae_tiny", "vae_tiny", +[](Job& j) -> std::string& { return j.vae_tiny; },
                          "TAESD (tiny autoencoder) decoding instead of the full VAE: taesd_decoder.safetensors or "
                          "diffusers AutoencoderTiny folder; fast, slightly softer images");
  // Off (no TAESD) it is left out of the identity: a job without it keeps the identity it had before.
  vae_tiny.identity = [](const Job& j, const Ctx&) { return j.vae_tiny.empty() ? Json() : Json(j.vae_tiny); };
  t.push_back(vae_tiny);

}

// The settings of which weights: embeddings and LoRAs that extend them, the checkpoint, in --help order.
void add_extension_settings(std::vector<Setting>& t) {
  Setting embedding = base("--embedding", nullptr, SettingType::TextList, "embeddings",
                           "Textual-inversion embedding FILE[:TOKEN] (.safetensors; token: the file name); repeatable");
  embedding.parse = [](Job& j, const std::string& t) {
    const EmbeddingSpec e = parse_embedding_spec(t);
    j.embeddings.push_back({t, e.file, e.token});
  };
  embedding.identity = [](const Job& j, const Ctx&) { return Json(embedding_specs(j)); };
  // The embeddings the prompts use, by token.
  t.push_back(png(embedding, "TI hashes", 150, [](const Job& j, const Ctx&) -> std::string {
    std::string list;
    for (const EmbeddingArg& e : j.embeddings) {
      const bool used = j.prompt.find(e.token) != std::string::npos || j.negative_prompt.find(e.token) != std::string::npos ||
                        j.prompt_2.find(e.token) != std::string::npos ||
                        j.negative_prompt_2.find(e.token) != std::string::npos;
      if (!used) continue;
      list += (list.empty() ? "" : ", ") + clean_name(e.token) + ": " + embedding_short_hash(e.file);
    }
    return list.empty() ? list : "\"" + list + "\"";
  }));
  t.back().a1111_read = false;  // the prompt names its embeddings; give --embedding

  Setting lora = base("--lora", "lora", SettingType::TextList, "loras",
                      "LoRA FILE[:SCALE] (.safetensors, kohya or diffusers/PEFT), merged at load; repeatable");
  lora.parse = [](Job& j, const std::string& t) { j.loras.push_back({t, parse_lora_spec(t)}); };
  lora.from_json = [](Job& j, const Json& v) {  // a line's list replaces the command line's
    j.loras.clear();
    for (const std::string& x : v.is_string() ? std::vector<std::string>{v.get<std::string>()}
                                              : v.get<std::vector<std::string>>())
      j.loras.push_back({x, parse_lora_spec(x)});
  };
  lora.identity = [](const Job& j, const Ctx&) { return Json(lora_specs(j)); };
  lora.record = [](const Job& j, const Ctx&) {  // what was applied: --lora's and the prompt's tags
    Json a = Json::array();
    for (const LoraSpec& l : job_loras(j)) a.push_back({{"file", l.file}, {"scale", l.scale}});
    return a;
  };
  // Every LoRA the job applies, by the name its tag uses (the file's stem).
  t.push_back(png(lora, "Lora hashes", 140, [](const Job& j, const Ctx&) -> std::string {
    std::string list;
    for (const LoraSpec& l : job_loras(j))
      list += (list.empty() ? "" : ", ") + clean_name(fs::path(l.file).stem().string()) + ": " + lora_short_hash(l.file);
    return list.empty() ? list : "\"" + list + "\"";
  }));
  t.back().a1111_read = false;  // the prompt's <lora:> tags name them; --lora ones: give --lora

  Setting lora_dir = text("--lora-dir", nullptr, "lora_dir", +[](Job& j) -> std::string& { return j.lora_dir; },
                          "Folder where a prompt's <lora:NAME:SCALE> finds NAME.safetensors");
  lora_dir.in_identity = lora_dir.in_record = false;  // its LoRAs are recorded as files
  t.push_back(lora_dir);
  Setting model = text("-m,--model", "model", "model", +[](Job& j) -> std::string& { return j.model; },
                       "Checkpoint: .safetensors file or diffusers folder (default: $SDGEN_MODEL, then weights/)");
  model.in_identity = false;  // the identity holds the model's SHA-256
  model.record = [](const Job&, const Ctx& c) { return Json(c.model_name); };
  t.push_back(model);
}

// The settings of where the images go, in --help order.
void add_output_settings(std::vector<Setting>& t) {
  Setting out = text("-o,--out", "out", "out_dir", +[](Job& j) -> std::string& { return j.out_dir; }, "Output folder");
  out.in_identity = out.in_record = false;  // beside each image's path (set_record_paths)
  out.problem = [](const Job& j) { return j.out_dir.empty() ? "--out is empty" : ""; };
  t.push_back(out);
  Setting name = text("--name", "name", "name", +[](Job& j) -> std::string& { return j.name_pattern; },
                      "File name pattern: {n} number, {seed}, {i} batch index, {prompt}, {steps}, {w}, {h}");
  name.in_identity = name.in_record = false;  // the images' names, not their content
  t.push_back(name);
  t.push_back(flag("--ema", nullptr, "ema", true, +[](Job& j) -> bool& { return j.ema; },
                   "Use a single file's EMA copy of the UNet (model_ema.*) when it has both"));

}

std::vector<Setting> make_settings() {
  std::vector<Setting> t;
  add_prompt_settings(t);
  add_image_settings(t);
  add_input_settings(t);
  add_hires_settings(t);
  add_sampler_settings(t);
  add_model_settings(t);
  add_extension_settings(t);
  add_control_settings(t);
  add_output_settings(t);
  for (Setting& s : t) {
    if (!s.record) s.record = s.identity;
    if (!s.from_json && s.type != SettingType::TextList) {
      auto parse = s.parse;
      s.from_json = [parse](Job& j, const Json& v) { parse(j, v.get<std::string>()); };
    }
  }
  return t;
}

}  // namespace

const char* setting_type_name(SettingType t) {
  switch (t) {
    case SettingType::Text: return "a string";
    case SettingType::Word: return "a string";
    case SettingType::Int: return "an integer";
    case SettingType::Real: return "a number";
    case SettingType::Flag: return "true or false";
    case SettingType::Seed: return "an integer 0..18446744073709551615, or -1 for a random seed";
    case SettingType::TextList: return "a string or a list of strings";
  }
  return "";
}

std::string Setting::option() const {
  const std::string f = flags;
  const size_t p = f.rfind("--");
  return p == std::string::npos ? f : f.substr(p);
}

std::string Setting::json_type_problem(const Json& v) const {
  const std::string must = std::string("must be ") + setting_type_name(type);
  switch (type) {
    case SettingType::Int:
      if (!v.is_number_integer()) return must + ", not " + shown(v);
      if (v.is_number_unsigned() ? v.get<uint64_t>() > (uint64_t)INT_MAX
                                 : v.get<int64_t>() < INT_MIN || v.get<int64_t>() > INT_MAX)
        return must + " in the int range, not " + shown(v);
      return "";
    case SettingType::Real: return v.is_number() ? "" : must + ", not " + shown(v);
    case SettingType::Flag: return v.is_boolean() ? "" : must + ", not " + shown(v);
    case SettingType::Text:
    case SettingType::Word:
      if (!v.is_string()) return must + ", not " + shown(v);
      // A path with a NUL would be cut there by every file call, and name another file than shown.
      if (v.get<std::string>().find('\0') != std::string::npos) return "must be free of NUL characters";
      return "";
    case SettingType::TextList: {
      const bool strings =
          v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); });
      return v.is_string() || strings ? "" : must + ", not " + shown(v);
    }
    case SettingType::Seed:
      try {
        json_seed(v, "");
      } catch (const Error& e) {
        const std::string w = e.what();
        return w.substr(w.find("must be"));
      }
      return "";
  }
  return "";
}

const std::vector<Setting>& job_settings() {
  static const std::vector<Setting> all = make_settings();
  return all;
}

const Setting* find_setting(const std::string& long_flag) {
  for (const Setting& s : job_settings())
    if (s.option() == long_flag) return &s;
  return nullptr;
}

void add_settings(CLI::App& app, Job& job, const std::vector<std::string>& only,
                  const std::map<std::string, std::string>& help) {
  for (const Setting& s : job_settings()) {
    if (!only.empty() && std::find(only.begin(), only.end(), s.option()) == only.end()) continue;
    const auto own = help.find(s.option());
    const std::string text = own != help.end() ? own->second : s.help;
    if (s.type == SettingType::Flag) {
      app.add_flag_callback(s.flags, [&job, &s] { s.parse(job, s.flag_sets); }, text);
      continue;
    }
    CLI::Option* o = app.add_option(
        s.flags,
        [&job, &s](const CLI::results_t& r) {
          for (const std::string& t : r) s.parse(job, t);
          return true;
        },
        text);
    const Json shown_default = s.identity(job, RecordContext{});
    switch (s.type) {
      case SettingType::Int: o->type_name("INT"); break;
      case SettingType::Real: o->type_name("FLOAT"); break;
      default: o->type_name("TEXT");
    }
    if (s.type == SettingType::TextList) {
      o->expected(1, CLI::detail::expected_max_vector_size)->allow_extra_args();
    } else {
      o->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::Throw);
      if (own == help.end() && s.type != SettingType::Seed && !shown_default.is_null() &&
          !(shown_default.is_string() && shown_default.get<std::string>().empty()))
        o->default_str(shown_default.is_string() ? shown_default.get<std::string>() : shown_default.dump());
    }
  }
}

void apply_prompt_line(Job& job, const Json& line) {
  const std::string at = prefix(job.origin);
  if (!line.is_object()) throw_usage(at + "a JSON line must be an object {\"prompt\": ...}");
  auto setting_of = [](const std::string& key) -> const Setting* {
    for (const Setting& s : job_settings())
      if (s.key && key == s.key) return &s;
    return nullptr;
  };
  // Every value's type first, so that a line's first fault is reported whatever the key order.
  for (auto it = line.begin(); it != line.end(); ++it)
    if (const Setting* s = setting_of(it.key()))
      if (const std::string why = s->json_type_problem(it.value()); !why.empty())
        throw_usage(at + "\"" + it.key() + "\" " + why);
  for (auto it = line.begin(); it != line.end(); ++it) {
    const Setting* s = setting_of(it.key());
    if (!s) {
      std::string keys;
      for (const Setting& k : job_settings())
        if (k.key) keys += (keys.empty() ? "" : ", ") + std::string(k.key);
      throw_usage(at + "unknown key \"" + it.key() + "\" (" + keys + ")");
    }
    try {
      s->from_json(job, it.value());
    } catch (const Error& e) {
      throw Error(e.code(), at + e.what());
    }
  }
  if (!line.contains("prompt")) throw_usage(at + "missing \"prompt\"");
}

void finish_job(Job& job) {
  job.prompt_loras.clear();
  try {
    job.text_prompt = extract_lora_tags(job.prompt, job.lora_dir, &job.prompt_loras);
  } catch (const Error& e) {
    throw_usage(prefix(job.origin) + e.what());
  }
}

void check_settings(const Job& job) {
  for (const Setting& s : job_settings())
    if (s.problem)
      if (const std::string why = s.problem(job); !why.empty()) throw_usage(prefix(job.origin) + why);
}

Json settings_record(const Job& job, const RecordContext& ctx) {
  Json r = Json::object();
  for (const Setting& s : job_settings())  // as the identity, a setting not in effect is left out
    if (s.in_record && s.json)
      if (Json v = s.record(job, ctx); !v.is_null()) r[s.record_name ? s.record_name : s.json] = std::move(v);
  return r;
}

Json settings_identity(const Job& job, const RecordContext& ctx) {
  Json r = Json::object();
  // A setting not in effect (identity null: no --init-image, so no strength either) is left out,
  // so the identities of manifests written before it existed still match.
  for (const Setting& s : job_settings())
    if (s.in_identity && s.json)
      // A setting that is off (null) is left out: a job without it keeps the identity it had
      // before the setting existed.
      if (Json v = s.identity(job, ctx); !v.is_null()) r[s.json] = std::move(v);
  return r;
}

std::string settings_infotext(const Job& job, const RecordContext& ctx, std::vector<std::pair<int, std::string>> extra) {
  for (const Setting& s : job_settings())
    if (s.png)
      if (const std::string v = s.png(job, ctx); !v.empty()) extra.emplace_back(s.png_rank, std::string(s.a1111) + ": " + v);
  std::stable_sort(extra.begin(), extra.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (const auto& [rank, text] : extra) out += (out.empty() ? "" : ", ") + text;
  return out;
}

std::vector<LoraSpec> job_loras(const Job& job) {
  std::vector<LoraSpec> out;
  for (const LoraArg& l : job.loras) out.push_back(l.lora);
  out.insert(out.end(), job.prompt_loras.begin(), job.prompt_loras.end());
  return out;
}

HiresParams job_hires(const Job& j) {
  HiresParams h;
  if (j.hires_scale > 0) {
    h.width = hires_side(j.width, j.hires_scale);
    h.height = hires_side(j.height, j.hires_scale);
  } else if (j.hires_width > 0 || j.hires_height > 0) {
    h.width = j.hires_width > 0 ? j.hires_width : j.hires_height * j.width / j.height;
    h.height = j.hires_height > 0 ? j.hires_height : j.hires_width * j.height / j.width;
  }
  h.steps = j.hires_steps;
  h.denoise = j.hires_denoise;
  h.upscaler = j.hires_upscaler;
  return h;
}

std::string DeviceSpec::text() const {
  if (kind == Auto) return "auto";
  if (kind == Cpu) return "cpu";
  return ordinal >= 0 ? "cuda:" + std::to_string(ordinal) : "cuda";
}

}  // namespace sdgen::cli
