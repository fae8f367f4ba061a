// The builders of the settings table (settings.h): one function per kind of setting (text, integer,
// real, flag, word), the PNG label, and the small parsers they share; used by the files that declare
// settings (settings.cpp, settings_control.cpp).
#pragma once
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/settings.h"
#include "core/decimal.h"
#include "core/sha256.h"
#include "sdgen/error.h"

namespace sdgen::cli::builders {

constexpr int kMaxSide = 2048;
constexpr int kMaxBatch = 64;
constexpr int kMaxSteps = 500;

using Json = nlohmann::json;
using Ctx = RecordContext;

inline std::string prefix(const std::string& origin) {
  return origin.empty() || origin == "--prompt" ? std::string() : origin + ": ";
}

// Up to 40 characters of a JSON value, for messages.
inline std::string shown(const Json& v) {
  std::string s = v.dump(-1, ' ', true, Json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

inline std::string number_text(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

inline int parse_int(const std::string& flag, const std::string& t) {
  if (!is_decimal_integer(t)) throw_usage(flag + ": '" + t + "' is not a decimal integer");
  errno = 0;
  const long long v = std::strtoll(t.c_str(), nullptr, 10);
  if (errno == ERANGE || v < INT_MIN || v > INT_MAX) throw_usage(flag + ": '" + t + "' is out of the int range");
  return (int)v;
}

// The decimal's nearest T (float or double: --strength is a double, as Python's float, so that
// int(steps·strength) counts the steps diffusers counts).
template <class T>
T parse_real(const std::string& flag, const std::string& t) {
  if (!is_decimal_real(t)) throw_usage(flag + ": '" + t + "' is not a decimal number");
  const T v = (T)std::strtod(t.c_str(), nullptr);
  if (!std::isfinite(v)) throw_usage(flag + ": '" + t + "' is out of range");
  return v;
}

// Field accessors: one function gives the field for reading and writing.
template <class T>
using Field = T& (*)(Job&);
template <class T>
const T& get(Field<T> f, const Job& j) {
  return f(const_cast<Job&>(j));
}

inline Setting base(const char* flags, const char* key, SettingType type, const char* json, const char* help) {
  Setting s;
  s.flags = flags, s.key = key, s.type = type, s.json = json, s.help = help;
  return s;
}

inline Setting text(const char* flags, const char* key, const char* json, Field<std::string> f, const char* help) {
  Setting s = base(flags, key, SettingType::Text, json, help);
  s.parse = [f](Job& j, const std::string& t) { f(j) = t; };
  s.identity = [f](const Job& j, const Ctx&) { return Json(get(f, j)); };
  return s;
}

// An integer in [lo, hi]; `why` words the range when plain "between lo and hi" would not say it.
inline Setting integer(const char* flags, const char* key, Field<int> f, int lo, int hi, const char* help,
                std::function<std::string(int)> why = nullptr) {
  Setting s = base(flags, key, SettingType::Int, key, help);
  s.min = lo, s.max = hi;
  const std::string flag = s.option();
  s.parse = [f, flag](Job& j, const std::string& t) { f(j) = parse_int(flag, t); };
  s.from_json = [f](Job& j, const Json& v) { f(j) = (int)v.get<int64_t>(); };
  s.identity = [f](const Job& j, const Ctx&) { return Json(get(f, j)); };
  s.problem = [f, flag, lo, hi, why](const Job& j) -> std::string {
    const int v = get(f, j);
    if (v >= lo && v <= hi && !(why && !why(v).empty())) return "";
    if (why) return flag + " " + std::to_string(v) + " " + why(v);
    return flag + " " + std::to_string(v) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi);
  };
  return s;
}

template <class T>
Setting real(const char* flags, const char* key, Field<T> f, double lo, double hi, const char* help) {
  Setting s = base(flags, key, SettingType::Real, key, help);
  s.min = lo, s.max = hi;
  const std::string flag = s.option();
  s.parse = [f, flag](Job& j, const std::string& t) { f(j) = parse_real<T>(flag, t); };
  s.from_json = [f](Job& j, const Json& v) { f(j) = v.get<T>(); };
  s.identity = [f](const Job& j, const Ctx&) { return Json(get(f, j)); };
  s.problem = [f, flag, lo, hi](const Job& j) -> std::string {
    const T v = get(f, j);
    if (v >= lo && v <= hi) return "";
    return flag + " must be between " + number_text(lo) + " and " + number_text(hi);
  };
  return s;
}

inline Setting flag(const char* flags, const char* key, const char* json, bool sets, Field<bool> f, const char* help) {
  Setting s = base(flags, key, SettingType::Flag, json, help);
  s.flag_sets = sets ? "true" : "false";
  s.parse = [f](Job& j, const std::string& t) { f(j) = t == "true"; };
  s.from_json = [f](Job& j, const Json& v) { f(j) = v.get<bool>(); };
  s.identity = [f](const Job& j, const Ctx&) { return Json(get(f, j)); };
  return s;
}

// One of a few words, each a value of T.
template <class T>
Setting word(const char* flags, const char* key, Field<T> f, std::vector<std::pair<std::string, T>> values,
             const char* help) {
  Setting s = base(flags, key, SettingType::Word, key, help);
  std::string list;
  for (const auto& [w, v] : values) {
    s.words.push_back(w);
    list += (list.empty() ? "" : ", ") + w;
  }
  const std::string flag = s.option();
  s.parse = [f, values, flag, list](Job& j, const std::string& t) {
    for (const auto& [w, v] : values)
      if (w == t) {
        f(j) = v;
        return;
      }
    throw_usage(flag + " '" + t + "' is not one of " + list);
  };
  s.identity = [f, values](const Job& j, const Ctx&) {
    for (const auto& [w, v] : values)
      if (v == get(f, j)) return Json(w);
    return Json();
  };
  return s;
}

inline std::vector<std::string> lora_specs(const Job& j) {
  std::vector<std::string> out;
  for (const LoraArg& l : j.loras) out.push_back(l.spec);
  return out;
}

inline std::vector<std::string> embedding_specs(const Job& j) {
  std::vector<std::string> out;
  for (const EmbeddingArg& e : j.embeddings) out.push_back(e.spec);
  return out;
}

// A1111's hash lists are quoted (their values hold commas); names lose ':' and ','.
inline std::string clean_name(std::string n) {
  n.erase(std::remove_if(n.begin(), n.end(), [](char c) { return c == ':' || c == ','; }), n.end());
  return n;
}

// A setting with its place in the PNG parameters (A1111's label and order).
inline Setting png(Setting s, const char* label, int rank, std::function<std::string(const Job&, const Ctx&)> f) {
  s.a1111 = label, s.png_rank = rank, s.png = std::move(f);
  return s;
}


// A picture's identity: its file and content hash (the file alone when it cannot be read yet: the
// problem check reports that); null for none.
inline Json picture_identity(const std::string& file) {
  if (file.empty()) return Json();
  try {
    return Json({{"file", file}, {"sha256", sha256_file(file)}});
  } catch (const Error&) {
    return Json({{"file", file}});
  }
}

// The ControlNet settings (settings_control.cpp), in --help order.
void add_control_settings(std::vector<Setting>& t);

}  // namespace sdgen::cli::builders
