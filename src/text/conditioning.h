// The UNet's text context for a batch of prompts: each prompt chunked (prompt_chunks.h), every
// chunk encoded by CLIP alone, A1111's emphasis applied per chunk, and the chunks concatenated along
// the token axis, so a prompt of k chunks gives k·77 keys to the cross-attentions. All rows are
// padded with empty-prompt chunks to the longest prompt's count (the negative and the positive
// prompt of a pair included), because one UNet call takes them as one [rows, k·77, D] tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace sdgen {

class ClipTextEncoder;

struct ConditioningOptions {
  bool emphasis = true;  // false: --no-emphasis (prompt_chunks.h)
  // Chunks kept per prompt (1200 tokens); more are dropped with a warning. Cross-attention cost
  // grows with the keys, and no SD v1 prompt needs this many; A1111 sets no bound.
  int max_chunks = 16;
  // At least this many chunks per row (SDXL matches its two encoders' counts with it).
  int min_chunks = 1;
  // A1111's Clip skip (ClipTextEncoder::forward) for the rows from clip_skip_from_row on; the rows
  // before it keep the last layer (diffusers applies clip_skip to the prompt, not the negative).
  int clip_skip = 1;
  int clip_skip_from_row = 0;
  TextCleanup text_cleanup = TextCleanup::Ftfy;  // --text-cleanup (tokenizer.h)
};

struct Conditioning {
  std::vector<float> hidden;  // [rows, chunks·77, dim], fp32 on the host
  int rows = 0, chunks = 0;
  int64_t dim = 0;
  // With a projecting encoder (SDXL's second): each prompt's pooled embedding (its first chunk's),
  // [rows, pooled_dim] fp32; empty otherwise.
  std::vector<float> pooled;
  int64_t pooled_dim = 0;
  int64_t tokens() const { return (int64_t)chunks * 77; }
};

// A1111's emphasis (its "Original" option) on one chunk's hidden states z [tokens, dim]: z times
// each token's weight, then rescaled so that the mean over the whole chunk is what it was. A chunk
// whose weights are all 1 is left untouched, bit for bit (the rescale would only add rounding).
void apply_emphasis(float* z, const std::vector<float>& weights, int64_t dim);

Conditioning encode_prompts(const ClipTokenizer& tokenizer, const ClipTextEncoder& clip,
                            const std::vector<std::string>& prompts, const ConditioningOptions& options = {},
                            const std::function<void(const std::string&)>& log = nullptr);

}  // namespace sdgen
