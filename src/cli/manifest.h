// --manifest FILE: one JSON line per finished image, appended and fsync'ed as soon as the image is in
// place, so that an interrupted run (--skip-existing) knows exactly which images are done.
//
// An image is identified by its job (prompt-file line number, prompt, negative prompt, base seed,
// every setting that changes its pixels, the model's SHA-256) and its index in the batch; it counts
// as done when a line with that identity names a file that still exists with the recorded SHA-256.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/options.h"

namespace sdgen::cli {

// SHA-256 of a model: of the file's bytes, or for a diffusers folder of the `sha256sum` listing of
// its files ("<hex>  <relative path>\n" per regular file, symlinks followed, in byte order of the
// relative paths), i.e. `cd DIR && find -L . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n'
// sha256sum | sha256sum`. Nothing is cached. Throws Error(kModel) when a file cannot be read.
std::string model_sha256(const std::string& path);

// The line number of a prompt-file job ("prompts.txt:12" -> 12), 0 for --prompt.
int job_line(const Job& job);
// The identity of a job as the manifest records it (base seed: the seed it was run with).
nlohmann::json job_identity(const Job& job, uint64_t base_seed, const std::string& model_sha);

class Manifest {
 public:
  // Reads the records already in `path` (a missing file is an empty manifest; a line that is not a
  // record, e.g. cut short by a crash, is skipped with a warning through `warn`) and opens it for
  // appending. Throws Error(kOutput) when it cannot be opened.
  Manifest(const std::string& path, const std::function<void(const std::string&)>& warn);
  ~Manifest();
  Manifest(const Manifest&) = delete;
  Manifest& operator=(const Manifest&) = delete;
  // Image `index` of the job with this identity is recorded and its file still holds those bytes.
  bool done(const nlohmann::json& identity, int index) const;
  // Appends one record (one line, written with one write() and fsync'ed). Throws Error(kOutput).
  void append(const nlohmann::json& record);
  const std::string& path() const { return path_; }
  // The "shard" values ("K/N") of the records read.
  const std::set<std::string>& shards() const { return shards_; }

 private:
  std::string path_;
  int fd_ = -1;
  // identity+index -> the (path, png_sha256) pairs recorded for it
  std::multimap<std::string, std::pair<std::string, std::string>> records_;
  std::set<std::string> shards_;
};

}  // namespace sdgen::cli
