#include "text/embedding_spec.h"

#include <filesystem>

namespace sdgen {

namespace fs = std::filesystem;

EmbeddingSpec parse_embedding_spec(const std::string& spec) {
  EmbeddingSpec out;
  std::error_code ec;
  const size_t colon = spec.rfind(':');
  if (fs::is_regular_file(spec, ec) || colon == std::string::npos || spec.find('/', colon) != std::string::npos) {
    out.file = spec;
  } else {
    out.file = spec.substr(0, colon);
    out.token = spec.substr(colon + 1);
  }
  if (out.token.empty()) out.token = fs::path(out.file).stem().string();
  return out;
}

}  // namespace sdgen
