// The CLIP BPE tokenizer, exact to transformers' CLIPTokenizer with ftfy installed (spec in
// shared/DESIGN.md part 2): ftfy-style cleanup, whitespace collapse, lowercase, the CLIP
// pre-tokenizer regex, byte-level BPE by merge rank.
#pragma once
#include <string>
#include <vector>

namespace sdgen {

class ClipTokenizer {
 public:
  static constexpr int kBos = 49406;  // <|startoftext|>
  static constexpr int kEos = 49407;  // <|endoftext|>, also the padding id
  static constexpr int kContext = 77;

  // OpenAI's bpe_simple_vocab_16e6.txt.gz (the one shipped in weights/).
  static ClipTokenizer from_bpe_gz(const std::string& path);
  // A diffusers/transformers tokenizer folder's vocab.json + merges.txt.
  static ClipTokenizer from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);

  // Token ids of the text, without BOS/EOS, untruncated.
  std::vector<int> encode(const std::string& text) const;
  // [BOS] + ids + [EOS], truncated to 77 (keeping the final EOS) and padded with EOS.
  // *truncated (when given) says whether tokens were dropped.
  std::vector<int> encode_padded(const std::string& text, bool* truncated = nullptr) const;
  int vocab_size() const;
  // ... implementation details are the tokenizer's own.
};

}  // namespace sdgen
