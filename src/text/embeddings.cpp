#include "text/embeddings.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "io/safetensors.h"
#include "sdgen/error.h"
#include "text/clip.h"
#include "text/tokenizer.h"

namespace sdgen {

namespace fs = std::filesystem;

Embedding load_embedding(const EmbeddingSpec& spec, int64_t hidden, const char* key) {
  Embedding e;
  e.file = spec.file;
  e.token = spec.token;
  const std::string what = "--embedding " + e.file;
  std::error_code ec;
  if (!fs::is_regular_file(e.file, ec)) throw_model(what + ": no such file");
  std::unique_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::open(e.file);
  } catch (const Error& err) {
    unsigned char magic[4] = {0, 0, 0, 0};
    size_t n = 0;
    if (FILE* fp = std::fopen(e.file.c_str(), "rb")) {
      n = std::fread(magic, 1, 4, fp);
      std::fclose(fp);
    }
    if ((n == 4 && magic[0] == 'P' && magic[1] == 'K') || (n >= 2 && magic[0] == 0x80 && magic[1] <= 5))
      throw_model(what + ": a PyTorch pickle (.pt/.bin); only .safetensors embeddings are supported");
    throw_model(what + ": " + err.what());
  }
  const StTensorInfo* t = f->find(key ? key : "emb_params");
  if (key && !t)
    throw_model(what + ": no \"" + key + "\" tensor; an SDXL embedding holds \"clip_l\" and \"clip_g\" vectors, one set "
                "per text encoder" + (!f->find("clip_l") && !f->find("clip_g") ? " (this one has neither: an SD v1/2 embedding?)" : ""));
  if (!t) {
    std::vector<const StTensorInfo*> floats;
    for (const StTensorInfo& x : f->tensors())
      if (st_dtype_is_float(x.dtype)) floats.push_back(&x);
    if (floats.size() != 1)
      throw_model(what + ": no \"emb_params\" tensor (A1111) and " + std::to_string(floats.size()) +
                  " float tensors, not one (diffusers); not a textual-inversion embedding");
    t = floats[0];
  }
  if (!st_dtype_is_float(t->dtype))
    throw_model(what + ": tensor '" + printable_tensor_name(t->name) + "' is not a float tensor");
  Shape s = t->shape;
  if (s.size() == 1) s.insert(s.begin(), 1);
  if (s.size() != 2 || s[0] < 1)
    throw_model(what + ": tensor '" + printable_tensor_name(t->name) + "' has shape " + shape_str(t->shape) +
                ", expected [" + std::to_string(hidden) + "] or [n, " + std::to_string(hidden) + "]");
  if (s[1] != hidden)
    throw_model(what + ": " + (key ? "\"" + std::string(key) + "\" has " : std::string()) + "vectors of width " +
                std::to_string(s[1]) + ", but this model's text encoder takes " +
                std::to_string(hidden) + (s[1] == 1024 ? " (1024: an SD 2.x embedding?)" : "") +
                (s[1] == 1280 ? " (1280: an SDXL embedding?)" : ""));
  std::vector<float> values = f->to_floats(*t);
  // A NaN or infinity would pass through the text encoder into the latents, and the run would fail
  // at its end with the fault blamed on the sampling; refused here, naming the file.
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw_model(what + ": tensor '" + printable_tensor_name(t->name) + "' holds " +
                  (std::isnan(values[i]) ? "NaN" : "an infinity") + " (vector " + std::to_string(i / (size_t)hidden) +
                  ", element " + std::to_string(i % (size_t)hidden) + "); an embedding's values must be finite");
  e.vectors = Tensor::from_floats(s, std::move(values));
  return e;
}

void add_embeddings(const std::vector<Embedding>& embeddings, ClipTokenizer& tokenizer, ClipTextEncoder& clip) {
  for (const Embedding& e : embeddings) {
    const int n = (int)e.vectors.dim(0);
    std::vector<int> ids;
    for (int i = 0; i < n; ++i) ids.push_back(clip.token_count() + i);
    tokenizer.add_token(e.token, ids);  // checks the token first
    const int first = clip.append_token_rows(e.vectors);
    SDGEN_CHECK(first == ids[0], "embedding ids");
  }
}

}  // namespace sdgen
