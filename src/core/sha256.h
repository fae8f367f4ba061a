// SHA-256 (FIPS 180-4), written out plainly: the manifest records the model's and each PNG's digest
// so that a resumed run can tell a finished image from a stale or foreign one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sdgen {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(const std::string& s) { update(s.data(), s.size()); }
  // The digest as 64 lower-case hex digits; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);  // one 64-byte block into state_
  uint32_t state_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& s) { return sha256_hex(s.data(), s.size()); }
// Digest of a file's bytes. Throws Error(kOutput) naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace sdgen
