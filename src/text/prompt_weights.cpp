// A1111's parse_prompt_attention, written from its documented behaviour: a left-to-right scan over
// the tokens of its regular expression (escapes, openers, ":weight)", closers, runs of other text),
// with a stack of open round and square brackets; a closer multiplies every piece since its opener.
#include "text/prompt_weights.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace sdgen {
namespace {

constexpr double kRound = 1.1;
constexpr double kSquare = 1 / 1.1;

// Python's \s for the ASCII range (str.isspace: also the separators 0x1c-0x1f).
bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }
// \w for \b: ASCII letters, digits, '_'; a UTF-8 byte of a non-ASCII character counts as a letter,
// which is what Python says for letters (the common case) though not for non-ASCII punctuation.
bool is_word(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
bool is_special(char c) { return std::strchr("\\()[]:", c) != nullptr && c != '\0'; }

// The number of "(text:w)" as Python's float() reads the regex group [+-]?[.\d]+; false for
// "1.2.3" or ".", where A1111 raises (we keep the text literal).
bool parse_weight(const std::string& s, double* out) {
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (i == s.size()) return false;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data() + i, s.data() + s.size(), v, std::chars_format::fixed);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  *out = negative ? -v : v;
  return true;
}

// At s[i] == ':': the length of ":\s*([+-]?[.\d]+)\s*\)" there (0: no match), its number in *num.
size_t match_weight(const std::string& s, size_t i, std::string* num) {
  size_t j = i + 1;
  while (j < s.size() && is_space(s[j])) ++j;
  const size_t start = j;
  if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
  const size_t digits = j;
  while (j < s.size() && (s[j] == '.' || (s[j] >= '0' && s[j] <= '9'))) ++j;
  if (j == digits) return 0;
  *num = s.substr(start, j - start);
  while (j < s.size() && is_space(s[j])) ++j;
  if (j == s.size() || s[j] != ')') return 0;
  return j + 1 - i;
}

// Splits a run of plain text at every "\s*\bBREAK\b\s*" (the run's own ends count as boundaries,
// since A1111 splits each run alone), appending text pieces with break markers between them.
void append_text(const std::string& run, std::vector<PromptPiece>& res) {
  size_t cursor = 0;
  for (size_t i = run.find("BREAK"); i != std::string::npos; i = run.find("BREAK", i + 1)) {
    if (i < cursor) continue;
    const bool left = i == 0 || !is_word(run[i - 1]);
    const bool right = i + 5 == run.size() || !is_word(run[i + 5]);
    if (!left || !right) continue;
    size_t begin = i, end = i + 5;
    while (begin > cursor && is_space(run[begin - 1])) --begin;
    while (end < run.size() && is_space(run[end])) ++end;
    res.push_back({run.substr(cursor, begin - cursor), 1.0, false});
    res.push_back({"", 1.0, true});
    cursor = end;
  }
  res.push_back({run.substr(cursor), 1.0, false});
}

// Break markers keep their place and no weight: a BREAK inside brackets still breaks.
void multiply_from(std::vector<PromptPiece>& res, size_t start, double m) {
  for (size_t p = start; p < res.size(); ++p)
    if (!res[p].is_break) res[p].weight *= m;
}

// The deepest nesting of open brackets, round and square together, as the parser pairs them.
int max_bracket_depth(const std::string& s) {
  int round = 0, square = 0, deepest = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && i + 1 < s.size() && std::strchr("()[]\\", s[i + 1]) != nullptr) ++i;
    else if (c == '(') ++round;
    else if (c == '[') ++square;
    else if (c == ')' && round > 0) --round;
    else if (c == ']' && square > 0) --square;
    deepest = std::max(deepest, round + square);
  }
  return deepest;
}

}  // namespace

// A1111's weights in use lie within about 0.1..2, and past a few dozen a larger one changes nothing
// more: the weighted token's hidden states already dominate the chunk mean that apply_emphasis
// restores. 1e4 ("(x:10000)", or brackets nested 97 deep: 1.1^97 = 10353.6) is far past any
// meaningful weight, yet far inside float32, where the products (CLIP's hidden values reach tens)
// and their mean stay finite; nested 931 deep, the weight itself is infinite as a float32.
std::string prompt_weight_problem(const std::string& text) {
  double worst = 0;
  for (const PromptPiece& p : parse_prompt_attention(text))
    if (!p.is_break && !(std::fabs(p.weight) <= std::fabs(worst))) worst = p.weight;
  if (std::fabs(worst) <= kMaxPromptWeight) return "";
  char weight[32], buf[160];
  std::snprintf(weight, sizeof weight, std::isnan(worst) ? "NaN" : "%g", worst);  // inf · 0 is printed -nan
  std::snprintf(buf, sizeof buf, "emphasis gives a weight of %s (brackets nested %d deep); weights beyond ±%g are refused",
                weight, max_bracket_depth(text), kMaxPromptWeight);
  return buf;
}

std::vector<PromptPiece> parse_prompt_attention(const std::string& s) {
  std::vector<PromptPiece> res;
  std::vector<size_t> round, square;  // where each open bracket's pieces begin
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\\') {
      // "\(" "\)" "\[" "\]" "\\" give the character; a backslash before anything else is dropped.
      const bool escape = i + 1 < s.size() && std::strchr("()[]\\", s[i + 1]) != nullptr;
      res.push_back({escape ? std::string(1, s[i + 1]) : std::string(), 1.0, false});
      i += escape ? 2 : 1;
    } else if (c == '(') {
      round.push_back(res.size());
      ++i;
    } else if (c == '[') {
      square.push_back(res.size());
      ++i;
    } else if (c == ':') {
      std::string num;
      const size_t n = match_weight(s, i, &num);
      double w = 0;
      if (n > 0 && !round.empty() && parse_weight(num, &w)) {
        multiply_from(res, round.back(), w);
        round.pop_back();
        i += n;
      } else if (n > 0) {
        append_text(s.substr(i, n), res);  // no "(" open, or no number: literal, as A1111's else
        i += n;
      } else {
        res.push_back({":", 1.0, false});
        ++i;
      }
    } else if (c == ')' && !round.empty()) {
      multiply_from(res, round.back(), kRound);
      round.pop_back();
      ++i;
    } else if (c == ']' && !square.empty()) {
      multiply_from(res, square.back(), kSquare);
      square.pop_back();
      ++i;
    } else if (c == ')' || c == ']') {
      res.push_back({std::string(1, c), 1.0, false});  // a closer without its opener
      ++i;
    } else {
      size_t j = i;
      while (j < s.size() && !is_special(s[j])) ++j;
      append_text(s.substr(i, j - i), res);
      i = j;
    }
  }
  // Brackets never closed apply to everything after them: round ones first, then square (A1111's
  // order, which matters to the last bit of the product and so to which runs merge).
  for (size_t pos : round) multiply_from(res, pos, kRound);
  for (size_t pos : square) multiply_from(res, pos, kSquare);
  if (res.empty()) res.push_back({"", 1.0, false});

  std::vector<PromptPiece> merged;
  for (PromptPiece& p : res) {
    if (!merged.empty() && !p.is_break && !merged.back().is_break && merged.back().weight == p.weight)
      merged.back().text += p.text;
    else
      merged.push_back(std::move(p));
  }
  return merged;
}

}  // namespace sdgen
