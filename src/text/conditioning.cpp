#include "text/conditioning.h"

#include <algorithm>

#include "text/clip.h"
#include "text/prompt_chunks.h"
#include "text/tokenizer.h"

namespace sdgen {

void apply_emphasis(float* z, const std::vector<float>& weights, int64_t dim) {
  if (std::all_of(weights.begin(), weights.end(), [](float w) { return w == 1.0f; })) return;
  const int64_t n = (int64_t)weights.size() * dim;
  // Means in double, then float32 as torch's 0-d tensors hold them; the products in float32.
  double before = 0, after = 0;
  for (int64_t i = 0; i < n; ++i) before += z[i];
  for (size_t t = 0; t < weights.size(); ++t)
    for (int64_t d = 0; d < dim; ++d) {
      float& v = z[(int64_t)t * dim + d];
      v *= weights[t];
      after += v;
    }
  const float mean_before = (float)(before / (double)n), mean_after = (float)(after / (double)n);
  // A mean of exactly 0 after weighting (weights like 0 everywhere) would give A1111 inf or NaN;
  // we keep the weighted values instead.
  if (mean_after == 0.0f) return;
  const float scale = mean_before / mean_after;
  for (int64_t i = 0; i < n; ++i) z[i] *= scale;
}

Conditioning encode_prompts(const ClipTokenizer& tokenizer, const ClipTextEncoder& clip,
                            const std::vector<std::string>& prompts, const ConditioningOptions& options,
                            const std::function<void(const std::string&)>& log) {
  ChunkOptions chunking;
  chunking.emphasis = options.emphasis;
  chunking.cleanup = options.text_cleanup;
  std::vector<std::vector<PromptChunk>> per_prompt;
  int count = std::max(1, options.min_chunks);
  for (const std::string& p : prompts) {
    std::vector<PromptChunk> chunks = chunk_prompt(tokenizer, p, chunking);
    if ((int)chunks.size() > options.max_chunks) {
      if (log)
        log("warning: prompt of " + std::to_string(chunks.size()) + " chunks of 75 tokens cut to " +
            std::to_string(options.max_chunks) + ": \"" + p.substr(0, 60) + (p.size() > 60 ? "...\"" : "\""));
      chunks.resize(options.max_chunks);
    }
    count = std::max(count, (int)chunks.size());
    per_prompt.push_back(std::move(chunks));
  }
  // Row-major (prompt, chunk): CLIP's [rows·count, 77, D] output is then already [rows, count·77, D].
  std::vector<int> ids;
  std::vector<const PromptChunk*> order;
  const PromptChunk pad = empty_chunk(tokenizer);
  for (const auto& chunks : per_prompt)
    for (int c = 0; c < count; ++c) {
      const PromptChunk& chunk = c < (int)chunks.size() ? chunks[c] : pad;
      ids.insert(ids.end(), chunk.ids.begin(), chunk.ids.end());
      order.push_back(&chunk);
    }
  Conditioning out;
  out.rows = (int)prompts.size();
  out.chunks = count;
  if (prompts.empty()) return out;
  // [rows·count, 77, D]; with clip skip, the rows before clip_skip_from_row in a call of their own.
  const int plain_rows = options.clip_skip == 1 ? out.rows : std::clamp(options.clip_skip_from_row, 0, out.rows);
  const size_t split = (size_t)plain_rows * count * ClipTokenizer::kContext;
  for (int part = 0; part < 2; ++part) {
    const std::vector<int> part_ids(ids.begin() + (part ? (ptrdiff_t)split : 0),
                                    part ? ids.end() : ids.begin() + (ptrdiff_t)split);
    if (part_ids.empty()) continue;
    const int sequences = (int)(part_ids.size() / ClipTokenizer::kContext);
    Tensor pooled;
    const bool pool = clip.config().projection_dim > 0;
    const Tensor hidden = clip.forward(part_ids, sequences, part ? options.clip_skip : 1, pool ? &pooled : nullptr);
    out.dim = hidden.dim(2);
    const std::vector<float> v = hidden.to_floats();
    out.hidden.insert(out.hidden.end(), v.begin(), v.end());
    if (!pool) continue;
    // A prompt's pooled embedding is its first chunk's (diffusers has only one; A1111 takes the first).
    out.pooled_dim = pooled.dim(1);
    const std::vector<float> pv = pooled.to_floats();
    for (int s = 0; s < sequences; s += count)
      out.pooled.insert(out.pooled.end(), pv.begin() + (int64_t)s * out.pooled_dim,
                        pv.begin() + (int64_t)(s + 1) * out.pooled_dim);
  }
  const int64_t per_chunk = (int64_t)ClipTokenizer::kContext * out.dim;
  for (size_t i = 0; i < order.size(); ++i) apply_emphasis(out.hidden.data() + i * per_chunk, order[i]->weights, out.dim);
  return out;
}

}  // namespace sdgen
