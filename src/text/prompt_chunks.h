// A prompt of any length as CLIP inputs, the way A1111 builds them: its pieces (prompt_weights.h)
// tokenized piece by piece into chunks of 75 tokens, each chunk then wrapped as [BOS] + tokens +
// [EOS] + padding = 77 ids, with a weight per id (1 at BOS, EOS and padding). The padding is the
// tokenizer's pad id: EOS for SD v1, "!" (0) for SD 2.x.
//   - A chunk that would overflow is split after its last comma when that comma is among its last
//     20 tokens (A1111's "comma padding backtrack", default 20): the tokens after it move on.
//   - BREAK closes the current chunk, even an empty one; text ending in BREAK adds no chunk.
//   - An empty prompt is one chunk, [BOS] + [EOS] + 75 × pad.
// Each chunk is encoded by CLIP alone and the results are concatenated along the token axis
// (conditioning.h); a prompt of at most 75 tokens without brackets is exactly the single padded
// sequence ClipTokenizer::encode_padded gives.
#pragma once
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace sdgen {

struct PromptChunk {
  static constexpr int kTokens = 75;  // text tokens per chunk, between BOS and EOS
  std::vector<int> ids;               // 77
  std::vector<float> weights;         // 77, as A1111's float32 multipliers
  bool all_ones() const;
};

struct ChunkOptions {
  bool emphasis = true;       // off: the whole prompt is literal text of weight 1 (BREAK too), as A1111
  int comma_backtrack = 20;   // 0: never split at a comma
  TextCleanup cleanup = TextCleanup::Ftfy;  // how each piece is cleaned before BPE (tokenizer.h)
};

std::vector<PromptChunk> chunk_prompt(const ClipTokenizer& tokenizer, const std::string& prompt,
                                      const ChunkOptions& options = {});
// [BOS] + [EOS] + 75 × pad, weights 1: what the shorter prompt of a pair is padded with.
PromptChunk empty_chunk(const ClipTokenizer& tokenizer);

}  // namespace sdgen
