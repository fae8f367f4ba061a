#include "io/model_hashes.h"

#include <cstdint>
#include <fstream>
#include <map>
#include <mutex>
#include <vector>

#include "core/sha256.h"
#include "sdgen/error.h"

namespace sdgen {

namespace {

// SHA-256 of the file from byte `skip_header ? 8 + header length : 0` to its end.
std::string hash_file(const std::string& path, bool skip_safetensors_header) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_model(path + ": cannot read (for its hash)");
  if (skip_safetensors_header) {
    uint8_t len[8] = {};
    in.read((char*)len, 8);
    uint64_t n = 0;
    for (int k = 0; k < 8; ++k) n |= (uint64_t)len[k] << (8 * k);
    if (!in || !in.seekg((std::streamoff)(8 + n))) throw_model(path + ": header length beyond the file");
  }
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), (std::streamsize)buf.size()) || in.gcount() > 0) h.update(buf.data(), (size_t)in.gcount());
  return h.hex_digest().substr(0, 12);
}

std::string cached(const std::string& kind, const std::string& path, bool skip) {
  static std::mutex m;
  static std::map<std::string, std::string> done;
  std::lock_guard<std::mutex> lock(m);
  auto it = done.find(kind + path);
  if (it != done.end()) return it->second;
  return done[kind + path] = hash_file(path, skip);
}

bool is_safetensors(const std::string& path) {
  return path.size() >= 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
}

}  // namespace

std::string lora_short_hash(const std::string& path) { return cached("lora:", path, is_safetensors(path)); }

std::string embedding_short_hash(const std::string& path) { return cached("ti:", path, false); }

}  // namespace sdgen
