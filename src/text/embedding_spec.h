// --embedding FILE[:TOKEN], read without opening the file (text/embeddings.h loads it).
#pragma once
#include <string>

namespace sdgen {

struct EmbeddingSpec {
  std::string file;
  std::string token;  // the file name's stem unless the spec gives one
};
// "FILE[:TOKEN]": the whole spec is the file when it names an existing file, else it splits at the
// last ':'.
EmbeddingSpec parse_embedding_spec(const std::string& spec);

}  // namespace sdgen
