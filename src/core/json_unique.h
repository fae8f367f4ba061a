// JSON parsed with every object's keys unique. nlohmann::json keeps the last of two equal keys,
// so `{"steps": 2, "steps": 50}` would silently mean 50; sd-gen's inputs (prompt-file lines,
// safetensors headers, config files) refuse such a text instead, naming the key.
#pragma once
#include <nlohmann/json.hpp>
#include <cstddef>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdgen {

// Thrown by parse_json_unique_keys when the text holds more than its max_values.
struct JsonTooManyValues : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace json_unique_detail {
// nlohmann's DOM builder (what nlohmann::json::parse uses), with each object's keys checked and
// the values counted on the way. Not a parse callback: nlohmann's callback parser scans the
// enclosing object for discarded values at every object's end, quadratic in the entries of an
// object of objects (a safetensors header of 90,000 tensors took minutes).
class Sax {
 public:
  using json = nlohmann::json;
  Sax(json& result, std::string* duplicate, size_t max_values)
      : dom_(result, true), duplicate_(duplicate), max_values_(max_values) {}
  bool null() { return count() && dom_.null(); }
  bool boolean(bool v) { return count() && dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return count() && dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return count() && dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) { return count() && dom_.number_float(v, s); }
  bool string(json::string_t& v) { return count() && dom_.string(v); }
  bool binary(json::binary_t& v) { return count() && dom_.binary(v); }
  bool start_object(std::size_t n) {
    open_.emplace_back();
    return count() && dom_.start_object(n);
  }
  bool key(json::string_t& k) {
    if (!open_.empty() && !open_.back().insert(k).second && duplicate_->empty()) *duplicate_ = k;
    return count() && dom_.key(k);
  }
  bool end_object() {
    if (!open_.empty()) open_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return count() && dom_.start_array(n); }
  bool end_array() { return dom_.end_array(); }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& ex) {
    return dom_.parse_error(position, token, ex);  // throws ex, as nlohmann::json::parse does
  }

 private:
  bool count() {
    if (max_values_ && ++values_ > max_values_)
      throw JsonTooManyValues("more than " + std::to_string(max_values_) + " JSON values");
    return true;
  }
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::vector<std::set<std::string>> open_;  // the keys seen in each object being parsed
  std::string* duplicate_;
  size_t max_values_;
  size_t values_ = 0;
};
}  // namespace json_unique_detail

// Parses [first, last) as nlohmann::json::parse does (and throws as it does); a key that occurs
// twice in one object sets *duplicate to that key (the first such) and the result is discarded.
// max_values (0: none) bounds the keys, objects, arrays and scalars parsed, counted as they are
// parsed: the parsed form costs tens of bytes a value however short its text, so a bound on the
// text alone leaves the memory it takes many times larger (JsonTooManyValues when passed).
template <class It>
nlohmann::json parse_json_unique_keys(It first, It last, std::string* duplicate, size_t max_values = 0) {
  duplicate->clear();
  nlohmann::json j;
  json_unique_detail::Sax sax(j, duplicate, max_values);
  nlohmann::json::sax_parse(first, last, &sax);
  return duplicate->empty() ? j : nlohmann::json();
}

}  // namespace sdgen
