// Unattended batch runs: strict parsing of the numbers a batch script passes (seeds, prompt-file
// JSON values), file names that can never overwrite an image (checked up front, then created
// exclusively), and the split of one image set over N processes (--shard K/N).
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/options.h"

namespace sdgen::cli {

// --seed TEXT: a decimal 0..2^64-1, or -1 for a random seed (nullopt). Anything else (empty,
// signs, letters, spaces, out of range) throws Error(kUsage) naming `where`.
std::optional<uint64_t> parse_seed_text(const std::string& text, const std::string& where);
// A prompt-file "seed" value: an integer 0..2^64-1, or -1 for random (nullopt).
std::optional<uint64_t> json_seed(const nlohmann::json& v, const std::string& origin);
// Removes a leading UTF-8 byte-order mark.
void strip_bom(std::string& line);

// --name checks that need no folder: no control characters, and the longest name it can give
// (5-digit {n}, 20-digit seed, the last batch index) fits a file name (255 bytes).
void check_name_pattern(const Job& job);
bool pattern_has_number(const std::string& pattern);  // contains {n}
// Two images of this run that would get one file name (a pattern without {n} whose other fields do
// not tell them apart) are a usage error naming both, before any model is loaded.
void check_distinct_names(const std::vector<Job>& jobs);
// The first {n} not used by a file in `dir` that matches `pattern` ({n} anywhere, any number of
// digits; the other fields as the digits or slug they expand to).
int first_free_number(const std::string& dir, const std::string& pattern);

// --shard K/N: this process is part K (0-based, 0 <= K < N) of N.
struct Shard {
  int k = 0, n = 1;
};
Shard parse_shard(const std::string& text);
// One image of the run's image set: image `index` of job `job`.
struct ImageRef {
  size_t job;
  int index;
  bool operator<(const ImageRef& o) const { return job != o.job ? job < o.job : index < o.index; }
  bool operator==(const ImageRef& o) const { return job == o.job && index == o.index; }
};
// The images part K of N makes. The image set is cut into units in order: a job in --seed-mode batch
// is one unit (its images are one draw of one generator), each image of a per-image job is its own
// unit (image i has seed S+i and is made alone). Part K gets units [floor(K·U/N), floor((K+1)·U/N)).
// Throws Error(kUsage) when N > 1 and the run is a single batch-mode job of several images.
std::vector<ImageRef> shard_images(const std::vector<Job>& jobs, Shard shard);
// {n} of each image in a planned run (--shard, --skip-existing): its position among the images of
// the whole run that go to the same folder, so that every part and every rerun names it alike.
std::map<ImageRef, int> planned_numbers(const std::vector<Job>& jobs);

// Puts a finished PNG in place without ever replacing a file. `number`: the {n} to use. Planned
// runs (fixed_number) and patterns without {n}: a taken name that holds exactly these bytes is
// kept (a rerun that was killed between writing the image and recording it), any other file there
// is an output error. Otherwise a taken name moves to the next free number, which is then returned
// through `number`. Returns the path written.
std::string place_png(const Job& job, int* number, bool fixed_number, uint64_t image_seed, int index,
                      const std::vector<uint8_t>& png, bool* already_there);

}  // namespace sdgen::cli

namespace sdgen::cli {

// One generate() call of a run: images [first, first+count) of job `job`, of which those in
// `write` are to be written. A batch-mode job is always made whole (one draw). A per-image job is
// made whole in an unplanned run, and one image per call in a planned one (--shard, --skip-existing):
// batched and single-image GEMMs round differently, so only "always alone" gives every part and
// every rerun the same bytes for image i.
struct Call {
  size_t job;
  int first, count;
  std::vector<int> write;
};
// `todo` sorted (shard_images order, less the images already done).
std::vector<Call> plan_calls(const std::vector<Job>& jobs, const std::vector<ImageRef>& todo, bool planned);
// Every "cuda:N" of the run names one N (a process drives one GPU). Throws Error(kUsage).
void check_one_gpu(const std::vector<Job>& jobs);

}  // namespace sdgen::cli
