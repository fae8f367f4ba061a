// JSON parsed with every object's keys unique. nlohmann::json keeps the last of two equal keys,
// so `{"steps": 2, "steps": 50}` would silently mean 50; sd-gen's inputs (prompt-file lines,
// safetensors headers, config files) refuse such a text instead, naming the key.
#pragma once
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace sdgen {

// Parses [first, last) as nlohmann::json::parse does (and throws as it does); a key that occurs
// twice in one object sets *duplicate to that key (the first such) and the result is discarded.
template <class It>
nlohmann::json parse_json_unique_keys(It first, It last, std::string* duplicate) {
  std::vector<std::set<std::string>> open;  // the keys seen in each object being parsed
  duplicate->clear();
  nlohmann::json::parser_callback_t cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) open.emplace_back();
    if (ev == E::object_end && !open.empty()) open.pop_back();
    if (ev == E::key && !open.empty() && !open.back().insert(parsed.get<std::string>()).second && duplicate->empty())
      *duplicate = parsed.get<std::string>();
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(first, last, cb);
  return duplicate->empty() ? j : nlohmann::json();
}

}  // namespace sdgen
