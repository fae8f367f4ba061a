// Textual-inversion embeddings (--embedding FILE[:TOKEN]) from .safetensors files, in the forms
// diffusers' load_textual_inversion reads from safetensors:
//   - A1111's: one tensor "emb_params" [n, hidden] (also when the file has other, non-float entries);
//   - diffusers': exactly one tensor, named by its token, [hidden] or [n, hidden].
//   - SDXL's: "clip_l" [n, 768] and "clip_g" [n, 1280], one set of vectors per text encoder.
// The token is the file name's stem unless FILE:TOKEN gives one (diffusers takes the tensor's name
// in its own form; pass FILE:TOKEN to use that). A1111's .pt pickles are refused, as every pickle.
#pragma once
#include <string>
#include <vector>

#include "sdgen/tensor.h"
#include "text/embedding_spec.h"

namespace sdgen {

class ClipTokenizer;
class ClipTextEncoder;

struct Embedding {
  std::string file;   // as given
  std::string token;  // what a prompt writes
  Tensor vectors;     // [n, hidden] host fp32
};

// Reads one embedding. Error(kModel) naming the file for a missing, unreadable or pickle file, no
// usable tensor, or vectors whose width is not `hidden` (the text encoder's: 768 for SD v1).
// key: the tensor of that name only (SDXL embeddings hold "clip_l" for the first text encoder and
// "clip_g" for the second); nullptr: the forms above.
Embedding load_embedding(const EmbeddingSpec& spec, int64_t hidden, const char* key = nullptr);
// Adds each embedding's vectors to the token table and its token to the tokenizer (n vectors: n
// new ids). Error(kUsage) for a token given twice or already a vocabulary word.
void add_embeddings(const std::vector<Embedding>& embeddings, ClipTokenizer& tokenizer, ClipTextEncoder& clip);

}  // namespace sdgen
