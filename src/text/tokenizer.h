// The CLIP BPE tokenizer, exact to transformers' CLIPTokenizer with ftfy installed (the spec is
// theirs; tests/test_tokenizer.cpp holds us to it): ftfy-style cleanup, whitespace collapse, lowercase, the CLIP
// pre-tokenizer regex, byte-level BPE by merge rank. TextCleanup::Basic is transformers 5's instead.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sdgen {

// How a prompt is cleaned before BPE (--text-cleanup).
enum class TextCleanup {
  Ftfy,   // transformers' CLIPTokenizer with ftfy installed (transformers 4, OpenAI CLIP, A1111)
  Basic,  // transformers 5's CLIPTokenizer, what current diffusers runs: text_clean.h's basic_clean
};

class ClipTokenizer {
 public:
  static constexpr int kBos = 49406;  // <|startoftext|>
  static constexpr int kEos = 49407;  // <|endoftext|>, also the padding id
  static constexpr int kContext = 77;

  // OpenAI's bpe_simple_vocab_16e6.txt.gz (the one shipped in weights/).
  static ClipTokenizer from_bpe_gz(const std::string& path);
  // A diffusers/transformers tokenizer folder's vocab.json + merges.txt.
  static ClipTokenizer from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);
  // A tokenizers-library tokenizer.json (what transformers 5 saves alone): the BPE model's
  // "vocab" object and "merges", as "a b" strings (tokenizers < 0.20) or [a, b] pairs. Only the
  // vocabulary and merges are read; the cleanup stays this class's (see text_clean.h), so prompts
  // that ftfy or HTML unescaping would change may differ from transformers 5's fast tokenizer,
  // whose normalizer is NFC + lowercase only.
  static ClipTokenizer from_tokenizer_json(const std::string& path);

  // Token ids of the text, without BOS/EOS, untruncated.
  //   Ftfy: the cleanup of text_clean.h, then CLIP's pre-tokenizer regex with IGNORECASE.
  //   Basic: transformers 5's pipeline: basic_clean, the same regex without IGNORECASE, then the
  //   byte-level pre-tokenizer's GPT-2 regex, which splits the one kind of piece the CLIP regex
  //   keeps whole and GPT-2's does not: "<|endoftext|>" from text that was not the literal special
  //   token ("<|ENDOFTEXT|>", lowercased) becomes "<|", "endoftext", "|>".
  std::vector<int> encode(const std::string& text, TextCleanup cleanup = TextCleanup::Ftfy) const;
  // [BOS] + ids + [EOS], truncated to 77 (keeping the final EOS) and padded with the pad id.
  // *truncated (when given) says whether tokens were dropped.
  std::vector<int> encode_padded(const std::string& text, bool* truncated = nullptr,
                                 TextCleanup cleanup = TextCleanup::Ftfy) const;
  int vocab_size() const;
  int bos() const { return bos_; }
  int eos() const { return eos_; }
  int pad() const { return pad_; }

  // The id that fills a sequence after its end token (ModelConfig's TokenizerConfig): <|endoftext|>
  // unless set; SD 2.x's is "!". special: the token is also split out of prompt text as a special
  // token, before cleanup and BPE (transformers does so for every special token of the tokenizer).
  // Throws Error(kModel) when the vocabulary has no such token.
  void set_padding(const std::string& token, bool special);

  // Textual inversion (diffusers' tokenizer.add_tokens for a loaded embedding): `token` in a prompt
  // becomes `ids` (one per vector, as diffusers expands "<t>" to "<t> <t>_1 ..."). Matched like
  // transformers' added tokens: anywhere in the text, before cleanup and BPE, the longest token at
  // the leftmost position; ASCII case is ignored (transformers matches on its lowercased text).
  // Throws Error(kUsage) when the token is empty, already a vocabulary entry or already added.
  void add_token(const std::string& token, const std::vector<int>& ids);
  bool in_vocabulary(const std::string& token) const;

 private:
  // BPE works on interned symbols: every vocabulary token, plus any merge part or product the
  // vocabulary lacks (those map to the unknown id, as transformers' encoder.get(.., unk) does).
  int intern(const std::string& symbol, int vocab_id);
  void add_merge(const std::string& a, const std::string& b, int rank);
  // Byte symbols and special ids; throws (naming the file at fault) when either part is incomplete.
  void finish(const std::string& vocab_source, const std::string& merges_source);
  void bpe_word(const std::string& utf8_word, std::vector<int>& out) const;
  void encode_chunk(const std::u32string& raw, TextCleanup cleanup, std::vector<int>& out) const;

  std::unordered_map<std::string, int> sym_index_;
  std::vector<int> sym_vocab_id_;  // symbol -> token id (unk_ when not in the vocabulary)
  // (symbol a << 32 | symbol b) -> (merge rank, merged symbol)
  std::unordered_map<uint64_t, std::pair<int, int>> merges_;
  int byte_sym_[256] = {};      // symbol of each byte (GPT-2 byte table)
  int byte_sym_end_[256] = {};  // the same with "</w>" (last symbol of a word)
  int bos_ = kBos, eos_ = kEos, unk_ = kEos, pad_ = kEos;
  int vocab_size_ = 0;
  std::vector<std::pair<std::u32string, std::vector<int>>> added_;  // lowercased token -> ids
};

}  // namespace sdgen
