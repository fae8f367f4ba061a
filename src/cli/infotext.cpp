// Reading A1111's infotext back into a Job (infotext.h).
#include "cli/infotext.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/settings.h"
#include "io/png_text.h"
#include "sdgen/error.h"

namespace sdgen::cli {

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

bool word_char(char c) { return std::isalnum((unsigned char)c) || c == '_'; }
bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// The end of a JSON-style string starting at q (a '"'): one past its closing quote, holding at least
// one character; npos when it does not close.
size_t quoted_end(const std::string& s, size_t q) {
  size_t i = q + 1;
  while (i < s.size() && s[i] != '"') i += s[i] == '\\' && i + 1 < s.size() ? 2 : 1;
  return i < s.size() && i > q + 1 ? i + 1 : std::string::npos;
}

// The "Label: value" pairs of a line, found as A1111 finds them (left to right, skipping what is
// no pair): white space, a label (a word character, then one or more word characters, spaces, '-'
// or '/'), ':', white space, a value (a JSON string followed by ',' or the end, else everything up
// to the next ','), then ',' or the end. A quoted value is unquoted.
std::vector<std::pair<std::string, std::string>> pairs_of(const std::string& line) {
  std::vector<std::pair<std::string, std::string>> out;
  const size_t n = line.size();
  for (size_t p = 0; p < n;) {
    size_t i = p;
    while (i < n && space(line[i])) ++i;
    const size_t k = i;
    if (i < n && word_char(line[i]))
      for (++i; i < n && (word_char(line[i]) || line[i] == ' ' || line[i] == '-' || line[i] == '/');) ++i;
    if (i - k < 2 || i >= n || line[i] != ':') {
      ++p;
      continue;
    }
    const std::string label = line.substr(k, i - k);
    for (++i; i < n && space(line[i]);) ++i;
    std::string value;
    const size_t q = line[i] == '"' ? quoted_end(line, i) : std::string::npos;
    if (q != std::string::npos && (q == n || line[q] == ',')) {
      value = line.substr(i, q - i);
      const nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
      if (j.is_string()) value = j.get<std::string>();
      i = q;
    } else {
      const size_t comma = std::min(line.find(',', i), n);
      value = line.substr(i, comma - i);
      i = comma;
    }
    out.emplace_back(label, value);
    p = i < n ? i + 1 : n;
  }
  return out;
}

std::string shown(const std::string& label, const std::string& value) {
  const std::string v = value.size() > 40 ? value.substr(0, 37) + "..." : value;
  return "\"" + label + ": " + v + "\"";
}

}  // namespace

Infotext parse_infotext(const std::string& text) {
  std::vector<std::string> lines;
  const std::string all = trim(text);
  for (size_t b = 0;;) {
    const size_t e = all.find('\n', b);
    lines.push_back(all.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  Infotext t;
  if (pairs_of(lines.back()).size() >= 3) {  // else the last line is the prompt's too (A1111's rule)
    t.fields = pairs_of(lines.back());
    lines.pop_back();
  }
  bool negative = false;
  for (std::string line : lines) {
    line = trim(line);
    if (line.rfind("Negative prompt:", 0) == 0) {
      negative = true;
      line = trim(line.substr(16));
    }
    std::string& to = negative ? t.negative_prompt : t.prompt;
    to += (to.empty() ? "" : "\n") + line;
  }
  return t;
}

const std::vector<std::string>& ignored_a1111_labels() {
  static const std::vector<std::string> labels = {"Model", "Model hash", "VAE hash", "Version", "Batch pos"};
  return labels;
}

void apply_infotext(Job& job, const Infotext& text, const std::string& at) {
  std::map<std::string, std::string> value;  // the last of a repeated label
  for (const auto& field : text.fields) {
    const std::string& label = field.first;
    const std::string& v = field.second;
    const auto& ignored = ignored_a1111_labels();
    const bool known = std::find(ignored.begin(), ignored.end(), label) != ignored.end() ||
                       std::any_of(job_settings().begin(), job_settings().end(),
                                   [&](const Setting& s) { return s.a1111 && label == s.a1111; });
    if (!known) throw_usage(at + ": " + shown(label, v) + " is not a setting sd-gen reproduces");
    value[label] = v;
  }
  find_setting("--prompt")->parse(job, text.prompt);
  find_setting("--negative-prompt")->parse(job, text.negative_prompt);
  // In the table's order: the sampler before its schedule type.
  for (const Setting& s : job_settings()) {
    if (!s.a1111 || !s.a1111_read) continue;
    const auto it = value.find(s.a1111);
    if (it == value.end() && !s.a1111_absent) continue;
    const std::string v = it == value.end() ? s.a1111_absent : it->second;
    try {
      (s.from_a1111 ? s.from_a1111 : s.parse)(job, v);
    } catch (const Error& e) {
      throw_usage(at + ": " + shown(s.a1111, v) + ": " + e.what());
    }
  }
}

void apply_png_parameters(Job& job, const std::string& png_path) {
  apply_infotext(job, parse_infotext(read_png_text(png_path, "parameters", "--from-png")), "--from-png " + png_path);
}

}  // namespace sdgen::cli
