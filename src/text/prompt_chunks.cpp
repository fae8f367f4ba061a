// A1111's tokenize_line (FrozenCLIPEmbedderWithCustomWords), written from its documented
// behaviour, without textual-inversion embeddings.
#include "text/prompt_chunks.h"

#include "text/prompt_weights.h"
#include "text/tokenizer.h"

namespace sdgen {

bool PromptChunk::all_ones() const {
  for (float w : weights)
    if (w != 1.0f) return false;
  return true;
}

PromptChunk empty_chunk(const ClipTokenizer& tokenizer) {
  PromptChunk c;
  c.ids.assign(ClipTokenizer::kContext, tokenizer.pad());
  c.ids[0] = tokenizer.bos();
  c.ids[1] = tokenizer.eos();
  c.weights.assign(ClipTokenizer::kContext, 1.0f);
  return c;
}

namespace {

class ChunkBuilder {
 public:
  ChunkBuilder(const ClipTokenizer& tokenizer, int comma_id, int backtrack)
      : bos_(tokenizer.bos()), eos_(tokenizer.eos()), pad_(tokenizer.pad()), comma_(comma_id), backtrack_(backtrack) {}

  void add(int id, float weight) {
    const int n = (int)ids_.size();
    if (id == comma_) {
      last_comma_ = n;
    } else if (backtrack_ > 0 && n == PromptChunk::kTokens && last_comma_ >= 0 && n - last_comma_ <= backtrack_) {
      // Full, and a comma is near its end: the words after the comma start the next chunk, so that
      // a phrase is not cut in two.
      std::vector<int> moved_ids(ids_.begin() + last_comma_ + 1, ids_.end());
      std::vector<float> moved_w(weights_.begin() + last_comma_ + 1, weights_.end());
      ids_.resize(last_comma_ + 1);
      weights_.resize(last_comma_ + 1);
      close();
      ids_ = std::move(moved_ids);
      weights_ = std::move(moved_w);
    }
    if ((int)ids_.size() == PromptChunk::kTokens) close();
    ids_.push_back(id);
    weights_.push_back(weight);
  }

  // Pads the open chunk (even an empty one) and starts a new one.
  void close() {
    PromptChunk c;
    c.ids.reserve(ClipTokenizer::kContext);
    c.ids.push_back(bos_);
    c.ids.insert(c.ids.end(), ids_.begin(), ids_.end());
    c.ids.push_back(eos_);
    c.ids.resize(ClipTokenizer::kContext, pad_);
    c.weights.push_back(1.0f);
    c.weights.insert(c.weights.end(), weights_.begin(), weights_.end());
    c.weights.resize(ClipTokenizer::kContext, 1.0f);
    chunks_.push_back(std::move(c));
    ids_.clear();
    weights_.clear();
    last_comma_ = -1;
  }

  std::vector<PromptChunk> finish() {
    if (!ids_.empty() || chunks_.empty()) close();
    return std::move(chunks_);
  }

 private:
  int bos_, eos_, pad_, comma_, backtrack_;
  int last_comma_ = -1;  // index in the open chunk of its last comma
  std::vector<int> ids_;
  std::vector<float> weights_;
  std::vector<PromptChunk> chunks_;
};

}  // namespace

std::vector<PromptChunk> chunk_prompt(const ClipTokenizer& tokenizer, const std::string& prompt,
                                      const ChunkOptions& options) {
  const std::vector<PromptPiece> pieces =
      options.emphasis ? parse_prompt_attention(prompt) : std::vector<PromptPiece>{{prompt, 1.0, false}};
  // The comma's id from the vocabulary itself (267 in CLIP's), so the rule follows the tokenizer.
  const std::vector<int> comma = tokenizer.encode(",", options.cleanup);
  ChunkBuilder b(tokenizer, comma.size() == 1 ? comma[0] : -1, options.comma_backtrack);
  for (const PromptPiece& p : pieces) {
    if (p.is_break) {
      b.close();
      continue;
    }
    // Each piece is tokenized alone, as A1111 does: "a(b)" is "a" then "b", never "ab".
    for (int id : tokenizer.encode(p.text, options.cleanup)) b.add(id, (float)p.weight);
  }
  return b.finish();
}

}  // namespace sdgen
