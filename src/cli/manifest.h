// --manifest FILE: one JSON line per finished image, appended and fsync'ed as soon as the image is in
// place, so that an interrupted run (--skip-existing) knows exactly which images are done.
//
// An image is identified by its job (prompt-file line number, prompt, negative prompt, base seed,
// every setting that changes its pixels, the model's SHA-256) and its index in the batch; it counts
// as done when a line with that identity names a file inside the job's output folder that still
// exists with the recorded SHA-256. One process writes a manifest at a time (an advisory lock).
// Paths are kept byte for byte: a name that is not UTF-8 is also stored as hex ("path_hex").
// A --grid sheet has a line of its own ({"grid": path, "images": [...], "png_sha256": ...}), which
// the resume reading skips: a sheet is no image of a job.
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
// The fields a record stores for an image's path and its output folder: "path" (and "path_hex"
// when the bytes are not UTF-8) and "out_dir" (absolute, likewise "out_dir_hex").
void set_record_paths(nlohmann::json& record, const std::string& path, const std::string& out_dir);

class Manifest {
 public:
  // Reads the records already in `path` (a missing file is an empty manifest; a line that is not a
  // record, e.g. cut short by a crash, is skipped with a warning through `warn`) and opens it for
  // appending. Throws Error(kOutput) when it cannot be opened.
  Manifest(const std::string& path, const std::function<void(const std::string&)>& warn);
  ~Manifest();
  Manifest(const Manifest&) = delete;
  Manifest& operator=(const Manifest&) = delete;
  // Image `index` of the job with this identity is recorded, its file is in `out_dir` and still
  // holds those bytes. Throws Error(kUsage) when the identity is recorded for another folder only
  // (a manifest reused with another --out would otherwise skip nothing, or everything).
  bool done(const nlohmann::json& identity, int index, const std::string& out_dir) const;
  // Appends one record (one line, written with one write() and fsync'ed). Throws Error(kOutput).
  void append(const nlohmann::json& record);
  const std::string& path() const { return path_; }
  // The "shard" values ("K/N") of the records read.
  const std::set<std::string>& shards() const { return shards_; }

 private:
  std::string path_;
  int fd_ = -1;
  struct Record {
    std::string path, png_sha256, out_dir;  // out_dir empty in records of older versions
  };
  // identity+index -> the records of it
  std::multimap<std::string, Record> records_;
  std::set<std::string> shards_;
};

}  // namespace sdgen::cli
