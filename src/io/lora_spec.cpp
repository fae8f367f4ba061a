#include "io/lora_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/decimal.h"
#include "sdgen/error.h"

namespace sdgen {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

bool parse_scale(const std::string& s, float* out) {
  if (!is_decimal_real(s)) return false;
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

}  // namespace

LoraSpec parse_file_scale(const std::string& option, const std::string& spec) {
  LoraSpec out{spec, 1.0f};
  std::error_code ec;
  const size_t colon = spec.rfind(':');
  if (fs::exists(spec, ec) || colon == std::string::npos) return out;
  float v = 0;
  if (!parse_scale(spec.substr(colon + 1), &v))
    throw_usage(option + " " + spec + ": SCALE '" + spec.substr(colon + 1) + "' is not a number (FILE[:SCALE])");
  out.file = spec.substr(0, colon);
  out.scale = v;
  return out;
}

LoraSpec parse_lora_spec(const std::string& spec) { return parse_file_scale("--lora", spec); }

std::string extract_lora_tags(const std::string& prompt, const std::string& lora_dir, std::vector<LoraSpec>* found) {
  std::string out;
  size_t i = 0;
  while (i < prompt.size()) {
    const size_t at = prompt.find("<lora:", i);
    if (at == std::string::npos) break;
    const size_t close = prompt.find('>', at);
    if (close == std::string::npos) throw_usage("prompt: unclosed <lora:...> tag (A1111 form: <lora:NAME:SCALE>)");
    out += prompt.substr(i, at - i);
    const std::string body = prompt.substr(at + 6, close - at - 6);
    std::string name = body;
    float scale = 1.0f;
    const size_t c = body.find(':');
    if (c != std::string::npos) {
      name = body.substr(0, c);
      std::string s = body.substr(c + 1);
      if (s.find(':') != std::string::npos) s = s.substr(0, s.find(':'));  // A1111's te:unet split: te only
      if (!parse_scale(s, &scale)) throw_usage("prompt: <lora:" + body + ">: scale '" + s + "' is not a number");
    }
    if (name.empty()) throw_usage("prompt: <lora:" + body + "> has no name");
    // A prompt names a file inside --lora-dir, never one elsewhere: prompts come from files that
    // others write (shared prompt lists), and "../" or "/" would reach any file the user can read.
    if (name.find('/') != std::string::npos || name == "." || name == "..")
      throw_usage("prompt: <lora:" + body + ">: NAME must be a file name inside --lora-dir, not a path");
    if (!ends_with(name, ".safetensors")) name += ".safetensors";
    found->push_back(LoraSpec{(fs::path(lora_dir.empty() ? "." : lora_dir) / name).string(), scale});
    i = close + 1;
  }
  out += prompt.substr(std::min(i, prompt.size()));
  return out;
}

}  // namespace sdgen
