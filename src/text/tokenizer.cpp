// CLIP's byte-level BPE tokenizer, exact to transformers' (slow) CLIPTokenizer with ftfy installed:
// split off literal special tokens, clean up (text_clean.h), pre-tokenize with CLIP's regex, map
// UTF-8 bytes through the GPT-2 byte table, and merge by rank.
#include "text/tokenizer.h"

#include <utf8proc.h>
#include <zlib.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sdgen/error.h"
#include "text/text_clean.h"

namespace sdgen {
namespace {

constexpr int kNumMerges = 49152 - 256 - 2;  // the merge lines CLIP uses: 1..48894 after the header
const char* const kBosText = "<|startoftext|>";
const char* const kEosText = "<|endoftext|>";

// GPT-2's bytes_to_unicode, in its dict order: the printable bytes keep their code point, the
// other 68 get U+0100.. in byte order. Returns (byte, code point) pairs in that order.
std::vector<std::pair<int, char32_t>> byte_table() {
  std::vector<std::pair<int, char32_t>> t;
  std::vector<bool> kept(256, false);
  for (int b = 0; b < 256; ++b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
      t.emplace_back(b, static_cast<char32_t>(b));
      kept[b] = true;
    }
  }
  char32_t next = 256;
  for (int b = 0; b < 256; ++b)
    if (!kept[b]) t.emplace_back(b, next++);
  return t;
}

std::string utf8_of(char32_t c) {
  std::string s;
  text::utf8_append(s, c);
  return s;
}

// Python's str.split() for the ASCII whitespace merge lines can hold.
std::vector<std::string> split_ws(const std::string& line) {
  std::vector<std::string> parts;
  std::istringstream in(line);
  std::string p;
  while (in >> p) parts.push_back(p);
  return parts;
}

std::string read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw_model("cannot open the tokenizer vocabulary '" + path + "'");
  std::string data;
  char buf[1 << 16];
  while (true) {
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      throw_model("the tokenizer vocabulary '" + path + "' is corrupt: " + msg);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return data;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_model("cannot open the tokenizer file '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (true) {
    size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(s.substr(pos));
      return lines;
    }
    lines.push_back(s.substr(pos, nl - pos));
    pos = nl + 1;
  }
}

bool is_letter(char32_t c) {
  if (c > 0x10FFFF) return false;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}
bool is_number(char32_t c) {
  if (c > 0x10FFFF) return false;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
}
// [^\s\p{L}\p{N}]. Under IGNORECASE `regex` also rejects a character whose case variant is a letter
// or number; of the assigned characters only U+0345 (which folds to iota) is affected.
bool is_other(char32_t c, bool ignore_case) {
  return !text::is_regex_space(c) && !is_letter(c) && !is_number(c) && !(ignore_case && c == 0x345);
}

// Match of an ASCII literal at text[i]; with ignore_case as `regex` IGNORECASE (simple case folding;
// on lowercased text the only non-ASCII character folding to these letters is U+017F, long s).
size_t match_literal(const std::u32string& t, size_t i, const char* lit, bool ignore_case) {
  size_t k = 0;
  for (; lit[k]; ++k) {
    if (i + k >= t.size()) return 0;
    char32_t c = t[i + k], l = static_cast<unsigned char>(lit[k]);
    if (c == l) continue;
    if (ignore_case && l >= 'a' && l <= 'z' && c == l - 32) continue;
    if (ignore_case && l == 's' && c == 0x17F) continue;
    return 0;
  }
  return k;
}

// CLIP's pre-tokenizer regex, findall semantics:
// <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// transformers 4 compiles it with IGNORECASE; transformers 5's Split pre-tokenizer does not.
std::vector<std::u32string> pre_tokenize(const std::u32string& t, bool ignore_case) {
  static const char* const kLiterals[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::u32string> out;
  const size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    size_t len = 0;
    for (const char* lit : kLiterals)
      if ((len = match_literal(t, i, lit, ignore_case)) != 0) break;
    if (len == 0) {
      if (is_letter(t[i])) {
        len = 1;
        while (i + len < n && is_letter(t[i + len])) ++len;
      } else if (is_number(t[i])) {
        len = 1;
      } else if (is_other(t[i], ignore_case)) {
        len = 1;
        while (i + len < n && is_other(t[i + len], ignore_case)) ++len;
      }
    }
    if (len == 0) { ++i; continue; }
    out.push_back(t.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace

int ClipTokenizer::intern(const std::string& symbol, int vocab_id) {
  auto it = sym_index_.find(symbol);
  if (it != sym_index_.end()) {
    if (vocab_id >= 0) sym_vocab_id_[it->second] = vocab_id;  // later entries win, as in a dict
    return it->second;
  }
  int idx = static_cast<int>(sym_vocab_id_.size());
  sym_index_.emplace(symbol, idx);
  sym_vocab_id_.push_back(vocab_id);
  return idx;
}

void ClipTokenizer::add_merge(const std::string& a, const std::string& b, int rank) {
  const int sa = intern(a, -1), sb = intern(b, -1), sm = intern(a + b, -1);
  merges_[(static_cast<uint64_t>(sa) << 32) | static_cast<uint32_t>(sb)] = {rank, sm};
}

void ClipTokenizer::finish(const std::string& vocab_source, const std::string& merges_source) {
  auto id_of = [&](const char* tok) {
    auto it = sym_index_.find(tok);
    if (it == sym_index_.end() || sym_vocab_id_[it->second] < 0)
      throw_model("the tokenizer vocabulary '" + vocab_source + "' has no " + tok + " token");
    return sym_vocab_id_[it->second];
  };
  bos_ = id_of(kBosText);
  eos_ = id_of(kEosText);
  pad_ = eos_;
  unk_ = eos_;  // CLIPTokenizer's unk_token is <|endoftext|>
  for (int& id : sym_vocab_id_)
    if (id < 0) id = unk_;
  for (const auto& [byte, cp] : byte_table()) {
    byte_sym_[byte] = intern(utf8_of(cp), -1);
    byte_sym_end_[byte] = intern(utf8_of(cp) + "</w>", -1);
  }
  for (int& id : sym_vocab_id_)  // symbols interned just above that the vocabulary lacks
    if (id < 0) id = unk_;
  if (merges_.empty()) throw_model("the tokenizer merges '" + merges_source + "' are empty or corrupt");
}

ClipTokenizer ClipTokenizer::from_bpe_gz(const std::string& path) {
  const std::vector<std::string> lines = split_lines(read_gz(path));
  if (lines.size() < static_cast<size_t>(kNumMerges) + 1)
    throw_model("the tokenizer vocabulary '" + path + "' is corrupt: " + std::to_string(lines.size()) +
                " lines, expected at least " + std::to_string(kNumMerges + 1));
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(kNumMerges);
  for (int r = 0; r < kNumMerges; ++r) {
    std::vector<std::string> parts = split_ws(lines[1 + r]);
    if (parts.size() != 2)
      throw_model("the tokenizer vocabulary '" + path + "' is corrupt: line " + std::to_string(r + 2) +
                  " is not a merge");
    merges.emplace_back(parts[0], parts[1]);
  }
  // SimpleTokenizer's vocabulary: byte symbols, the same with </w>, merge products, specials.
  ClipTokenizer t;
  int id = 0;
  const auto table = byte_table();
  for (const auto& bc : table) t.intern(utf8_of(bc.second), id++);
  for (const auto& bc : table) t.intern(utf8_of(bc.second) + "</w>", id++);
  for (const auto& m : merges) t.intern(m.first + m.second, id++);
  t.intern(kBosText, id++);
  t.intern(kEosText, id++);
  t.vocab_size_ = static_cast<int>(t.sym_index_.size());
  for (int r = 0; r < kNumMerges; ++r) t.add_merge(merges[r].first, merges[r].second, r);
  t.finish(path, path);
  return t;
}

ClipTokenizer ClipTokenizer::from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) {
  ClipTokenizer t;
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_file(vocab_json));
  } catch (const nlohmann::json::exception& e) {
    throw_model("the tokenizer vocabulary '" + vocab_json + "' is not valid JSON: " + e.what());
  }
  if (!vocab.is_object()) throw_model("the tokenizer vocabulary '" + vocab_json + "' is not a JSON object");
  for (const auto& [token, value] : vocab.items()) {
    if (!value.is_number_integer() || value.get<long long>() < 0 ||
        value.get<long long>() > std::numeric_limits<int>::max())
      throw_model("the tokenizer vocabulary '" + vocab_json + "' has a bad id for '" + token + "'");
    t.intern(token, value.get<int>());
  }
  t.vocab_size_ = static_cast<int>(vocab.size());
  // transformers: read().strip().split("\n")[1 : 49152 - 256 - 2 + 1], each line .split().
  std::string text = read_file(merges_txt);
  size_t b = text.find_first_not_of(" \t\r\n\f\v"), e = text.find_last_not_of(" \t\r\n\f\v");
  text = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
  const std::vector<std::string> lines = split_lines(text);
  for (size_t r = 0; r + 1 < lines.size() && r < static_cast<size_t>(kNumMerges); ++r) {
    std::vector<std::string> parts = split_ws(lines[r + 1]);
    if (parts.size() == 2) t.add_merge(parts[0], parts[1], static_cast<int>(r));
  }
  t.finish(vocab_json, merges_txt);
  return t;
}

ClipTokenizer ClipTokenizer::from_tokenizer_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw_model("the tokenizer file '" + path + "' is not valid JSON: " + e.what());
  }
  const nlohmann::json* model = j.is_object() && j.contains("model") ? &j["model"] : nullptr;
  if (!model || !model->is_object() || model->value("type", "BPE") != "BPE" || !model->contains("vocab") ||
      !(*model)["vocab"].is_object() || !model->contains("merges") || !(*model)["merges"].is_array())
    throw_model("the tokenizer file '" + path + "' has no BPE model with a vocab object and a merges list");
  ClipTokenizer t;
  const nlohmann::json& vocab = (*model)["vocab"];
  for (const auto& [token, value] : vocab.items()) {
    if (!value.is_number_integer() || value.get<long long>() < 0 ||
        value.get<long long>() > std::numeric_limits<int>::max())
      throw_model("the tokenizer file '" + path + "' has a bad id for '" + token + "'");
    t.intern(token, value.get<int>());
  }
  // Added tokens (the specials) live outside model.vocab in some files; their ids are fixed there.
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& a : j["added_tokens"])
      if (a.is_object() && a.contains("content") && a["content"].is_string() && a.contains("id") &&
          a["id"].is_number_integer() && !vocab.contains(a["content"].get<std::string>()))
        t.intern(a["content"].get<std::string>(), a["id"].get<int>());
  t.vocab_size_ = static_cast<int>(t.sym_index_.size());
  // Every merge, ranked by position, as the tokenizers library's BPE model uses them.
  int rank = 0;
  for (const auto& m : (*model)["merges"]) {
    std::string a, b;
    if (m.is_string()) {
      std::vector<std::string> parts = split_ws(m.get<std::string>());
      if (parts.size() != 2)
        throw_model("the tokenizer file '" + path + "' has a bad merge '" + m.get<std::string>() + "'");
      a = parts[0];
      b = parts[1];
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw_model("the tokenizer file '" + path + "' has a merge that is neither \"a b\" nor [a, b]: " + m.dump());
    }
    t.add_merge(a, b, rank++);
  }
  t.finish(path, path);
  return t;
}

void ClipTokenizer::bpe_word(const std::string& word, std::vector<int>& out) const {
  std::vector<int> w(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    const auto byte = static_cast<unsigned char>(word[i]);
    w[i] = i + 1 < word.size() ? byte_sym_[byte] : byte_sym_end_[byte];
  }
  std::vector<int> next;
  while (w.size() > 1) {
    int best_rank = std::numeric_limits<int>::max(), first = -1, second = -1, merged = -1;
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      auto it = merges_.find((static_cast<uint64_t>(w[i]) << 32) | static_cast<uint32_t>(w[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        first = w[i];
        second = w[i + 1];
        merged = it->second.second;
      }
    }
    if (merged < 0) break;
    next.clear();
    for (size_t i = 0; i < w.size();) {
      if (i + 1 < w.size() && w[i] == first && w[i + 1] == second) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(w[i++]);
      }
    }
    w.swap(next);
  }
  for (int s : w) out.push_back(sym_vocab_id_[s]);
}

void ClipTokenizer::encode_chunk(const std::u32string& raw, TextCleanup cleanup, std::vector<int>& out) const {
  const bool ftfy = cleanup == TextCleanup::Ftfy;
  for (const std::u32string& token : pre_tokenize(ftfy ? text::clip_clean(raw) : text::basic_clean(raw), ftfy)) {
    const std::string utf8 = text::utf8_encode(token);
    if (utf8 == kBosText || utf8 == kEosText) {
      if (ftfy) {  // the reference's BPE cache returns these whole
        out.push_back(sym_vocab_id_[sym_index_.at(utf8)]);
      } else {  // GPT-2's regex: " ?[^\s\p{L}\p{N}]+", " ?\p{L}+", " ?[^\s\p{L}\p{N}]+"
        const size_t name = utf8.size() - 4;
        bpe_word(utf8.substr(0, 2), out);
        bpe_word(utf8.substr(2, name), out);
        bpe_word(utf8.substr(2 + name), out);
      }
      continue;
    }
    bpe_word(utf8, out);
  }
}

std::vector<int> ClipTokenizer::encode(const std::string& text, TextCleanup cleanup) const {
  // transformers first splits the raw text on the literal special tokens (its added-token trie) and
  // cleans and tokenizes each piece on its own. Added (textual-inversion) tokens split it the same way.
  const std::u32string raw = text::utf8_decode(text);
  static const std::u32string kSpecial[2] = {U"<|startoftext|>", U"<|endoftext|>"};
  auto lower = [](char32_t ch) { return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch; };
  std::vector<int> out;
  size_t start = 0, i = 0;
  while (i < raw.size()) {
    int hit = -1;
    size_t len = 0;
    if (raw[i] == '<')
      for (int s = 0; s < 2; ++s)
        if (raw.compare(i, kSpecial[s].size(), kSpecial[s]) == 0) hit = s, len = kSpecial[s].size();
    int added = -1;
    for (size_t a = 0; a < added_.size(); ++a) {
      const std::u32string& t = added_[a].first;
      if (t.size() <= len || i + t.size() > raw.size()) continue;
      bool same = true;
      for (size_t k = 0; k < t.size() && same; ++k) same = lower(raw[i + k]) == t[k];
      if (same) added = (int)a, len = t.size();
    }
    if (hit < 0 && added < 0) { ++i; continue; }
    if (i > start) encode_chunk(raw.substr(start, i - start), cleanup, out);
    if (added >= 0)
      out.insert(out.end(), added_[(size_t)added].second.begin(), added_[(size_t)added].second.end());
    else
      out.push_back(hit == 0 ? bos_ : eos_);
    i += len;
    start = i;
  }
  if (start < raw.size()) encode_chunk(raw.substr(start), cleanup, out);
  return out;
}

bool ClipTokenizer::in_vocabulary(const std::string& token) const {
  auto it = sym_index_.find(token);
  return it != sym_index_.end() && sym_vocab_id_[(size_t)it->second] != unk_;
}

void ClipTokenizer::add_token(const std::string& token, const std::vector<int>& ids) {
  if (token.empty()) throw_usage("an embedding's token is empty");
  if (ids.empty()) throw_usage("embedding token '" + token + "' has no vectors");
  if (in_vocabulary(token))
    throw_usage("embedding token '" + token + "' is already in the tokenizer's vocabulary; choose another with FILE:TOKEN");
  std::u32string t = text::utf8_decode(token);
  for (char32_t& ch : t)
    if (ch >= 'A' && ch <= 'Z') ch += 'a' - 'A';
  for (const auto& a : added_)
    if (a.first == t) throw_usage("embedding token '" + token + "' is given twice");
  added_.emplace_back(std::move(t), ids);
}

std::vector<int> ClipTokenizer::encode_padded(const std::string& text, bool* truncated, TextCleanup cleanup) const {
  std::vector<int> ids = encode(text, cleanup);
  const size_t room = kContext - 2;
  if (truncated) *truncated = ids.size() > room;
  if (ids.size() > room) ids.resize(room);
  std::vector<int> out;
  out.reserve(kContext);
  out.push_back(bos_);
  out.insert(out.end(), ids.begin(), ids.end());
  out.push_back(eos_);
  out.resize(kContext, pad_);
  return out;
}

void ClipTokenizer::set_padding(const std::string& token, bool special) {
  int id = -1;
  if (token == kEosText) {
    id = eos_;
  } else if (token == kBosText) {
    id = bos_;
  } else if (in_vocabulary(token)) {
    id = sym_vocab_id_[(size_t)sym_index_.at(token)];
  } else {
    throw_model("the tokenizer's pad token '" + token + "' is not in its vocabulary");
  }
  pad_ = id;
  if (!special || id == eos_ || id == bos_) return;
  std::u32string t = text::utf8_decode(token);
  for (char32_t& ch : t)
    if (ch >= 'A' && ch <= 'Z') ch += 'a' - 'A';
  added_.emplace_back(std::move(t), std::vector<int>{id});
}

int ClipTokenizer::vocab_size() const { return vocab_size_; }

}  // namespace sdgen
