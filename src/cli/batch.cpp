#include "cli/batch.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "io/png_writer.h"
#include "sdgen/error.h"

namespace fs = std::filesystem;

namespace sdgen::cli {

namespace {

constexpr size_t kMaxFileName = 255;  // NAME_MAX of Linux file systems (ext4, xfs, btrfs, tmpfs)
const char* kSeedRange = "an integer 0..18446744073709551615, or -1 for a random seed";

std::string prefix(const std::string& origin) { return origin.empty() ? std::string() : origin + ": "; }

// Up to 40 characters of a JSON value, for messages.
std::string shown(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

}  // namespace

std::optional<uint64_t> parse_seed_text(const std::string& text, const std::string& where) {
  if (text == "-1") return std::nullopt;
  const bool digits = !text.empty() && text.size() <= 20 &&
                      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    uint64_t v = 0;
    bool overflow = false;
    for (char c : text) {
      const uint64_t d = (uint64_t)(c - '0');
      if (v > (UINT64_MAX - d) / 10) overflow = true;
      v = v * 10 + d;
    }
    if (!overflow) return v;
  }
  throw_usage(where + " '" + text + "' must be " + kSeedRange);
}

std::optional<uint64_t> json_seed(const nlohmann::json& v, const std::string& origin) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() == -1) return std::nullopt;
  // nlohmann reads JSON's -0 as the signed integer 0 (not unsigned, as 0 is): the same number, seed 0.
  if (v.is_number_integer() && v.get<int64_t>() == 0) return 0;
  throw_usage(prefix(origin) + "\"seed\" must be " + kSeedRange + ", not " + shown(v));
}

void strip_bom(std::string& line) {
  if (line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
}

bool pattern_has_number(const std::string& pattern) { return pattern.find("{n}") != std::string::npos; }

void check_name_pattern(const Job& job) {
  // An empty pattern would name every image ".png": hidden, and the same for all of them.
  if (job.name_pattern.empty()) throw_usage(prefix(job.origin) + "--name is empty (default: {n}-{seed}-{i})");
  for (unsigned char c : job.name_pattern)
    if (c < 0x20 || c == 0x7f)
      throw_usage(prefix(job.origin) + "--name must not contain control characters (found byte " +
                  std::to_string((int)c) + ")");
  // {n} at its widest: past 99999 images in a folder it grows beyond its 5 digits, up to int's 10.
  const std::string longest = expand_name(job.name_pattern, INT_MAX, UINT64_MAX, std::max(job.batch - 1, 0), job);
  if (longest.size() > kMaxFileName)
    throw_usage(prefix(job.origin) + "--name gives file names of up to " + std::to_string(longest.size()) +
                " bytes; the limit is " + std::to_string(kMaxFileName));
}

void check_distinct_names(const std::vector<Job>& jobs) {
  // Names without {n} are fixed by the job: two images of this run with one name would overwrite.
  // An unknown (random) seed is given a value of its own per job, so {seed} tells such jobs apart.
  std::map<std::string, std::string> owner;  // folder/name -> "origin image i"
  for (size_t k = 0; k < jobs.size(); ++k) {
    const Job& j = jobs[k];
    if (pattern_has_number(j.name_pattern)) continue;
    const std::string dir = fs::path(j.out_dir).lexically_normal().string();
    for (int i = 0; i < j.batch; ++i) {
      const uint64_t base = j.seed ? *j.seed : UINT64_MAX - k;
      const uint64_t seed = j.seed_mode == SeedMode::PerImage ? base + (uint64_t)i : base;
      const std::string name = expand_name(j.name_pattern, 0, seed, i, j);
      const std::string who = j.origin + " image " + std::to_string(i);
      auto [it, fresh] = owner.emplace(dir + "/" + name, who);
      if (!fresh)
        throw_usage(prefix(j.origin) + "--name '" + j.name_pattern + "' gives " + name + " to both " + it->second +
                    " and " + who + ", which would overwrite it: add {n} or {i} to --name");
    }
  }
}

int first_free_number(const std::string& dir, const std::string& pattern) {
  // The pattern as a regular expression: literal text escaped, {n} a group of digits, the other
  // fields what they expand to. Greedy {n} errs towards a higher number, never a used one.
  std::string re;
  for (size_t p = 0; p < pattern.size();) {
    if (pattern[p] == '{') {
      const size_t close = pattern.find('}', p);
      if (close != std::string::npos) {
        const std::string key = pattern.substr(p + 1, close - p - 1);
        if (key == "n") re += "([0-9]+)";
        else if (key == "prompt") re += "[a-z0-9_]*";
        else re += "[0-9]+";
        p = close + 1;
        continue;
      }
    }
    const char c = pattern[p++];
    if (std::string("\\^$.|?*+()[]{}/").find(c) != std::string::npos) re += '\\';
    re += c;
  }
  if (pattern.size() < 4 || pattern.compare(pattern.size() - 4, 4, ".png") != 0) re += "\\.png";
  const std::regex matcher(re);
  long next = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    std::smatch m;
    if (std::regex_match(name, m, matcher) && m.size() > 1 && m[1].length() <= 9)
      next = std::max(next, std::stol(m[1].str()) + 1);
  }
  return (int)next;
}

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  auto number = [&](const std::string& s, long* v) {
    if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    *v = std::stol(s);
    return true;
  };
  long k = -1, n = -1;
  if (slash == std::string::npos || !number(text.substr(0, slash), &k) || !number(text.substr(slash + 1), &n) ||
      n < 1 || k >= n)
    throw_usage("--shard '" + text +
                "' must be K/N with 0 <= K < N (K is 0-based: Slurm's $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT "
                "with --array=0-<N-1>)");
  return {(int)k, (int)n};
}

std::vector<ImageRef> shard_images(const std::vector<Job>& jobs, Shard shard) {
  std::vector<std::vector<ImageRef>> units;
  for (size_t k = 0; k < jobs.size(); ++k) {
    if (jobs[k].seed_mode == SeedMode::PerImage) {
      for (int i = 0; i < jobs[k].batch; ++i) units.push_back({{k, i}});
    } else {
      std::vector<ImageRef> all;
      for (int i = 0; i < jobs[k].batch; ++i) all.push_back({k, i});
      units.push_back(all);
    }
  }
  if (shard.n > 1 && jobs.size() == 1 && units.size() == 1 && jobs[0].batch > 1)
    throw_usage("--shard " + std::to_string(shard.k) + "/" + std::to_string(shard.n) + ": --batch " +
                std::to_string(jobs[0].batch) +
                " in --seed-mode batch is one draw of one generator, so no image of it can be made without "
                "the others; use --seed-mode per-image (image i has seed S+i and is made alone) to split it");
  const size_t u = units.size();
  const size_t from = u * (size_t)shard.k / (size_t)shard.n, to = u * (size_t)(shard.k + 1) / (size_t)shard.n;
  std::vector<ImageRef> mine;
  for (size_t x = from; x < to; ++x) mine.insert(mine.end(), units[x].begin(), units[x].end());
  return mine;
}

std::map<ImageRef, int> planned_numbers(const std::vector<Job>& jobs) {
  std::map<std::string, int> next;  // per folder
  std::map<ImageRef, int> number;
  for (size_t k = 0; k < jobs.size(); ++k) {
    int& n = next[fs::path(jobs[k].out_dir).lexically_normal().string()];
    for (int i = 0; i < jobs[k].batch; ++i) number[{k, i}] = n++;
  }
  return number;
}

namespace {
bool file_holds(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::vector<uint8_t> have((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return have == bytes;
}
}  // namespace

std::string place_png(const Job& job, int* number, bool fixed_number, uint64_t image_seed, int index,
                      const std::vector<uint8_t>& png, bool* already_there) {
  *already_there = false;
  const bool numbered = pattern_has_number(job.name_pattern);
  if (numbered && !fixed_number) *number = std::max(*number, first_free_number(job.out_dir, job.name_pattern));
  for (int tries = 0;; ++tries) {
    const std::string path = job.out_dir + "/" + expand_name(job.name_pattern, *number, image_seed, index, job);
    if (write_file_exclusive(path, png.data(), png.size())) return path;
    if (!numbered || fixed_number) {
      if (file_holds(path, png)) {
        *already_there = true;
        return path;
      }
      throw_output(path + " exists and holds another image; not overwriting it (" +
                   (numbered ? std::string("remove it, or write to another --out")
                             : std::string("add {n} to --name, or write to another --out")) +
                   ")");
    }
    if (tries > 100000) throw_output("no free {n} for " + path + " after 100000 tries");
    ++*number;  // another process took this number since the folder was read
  }
}

}  // namespace sdgen::cli

namespace sdgen::cli {

std::vector<Call> plan_calls(const std::vector<Job>& jobs, const std::vector<ImageRef>& todo, bool planned) {
  std::vector<Call> calls;
  for (const ImageRef& r : todo) {
    Call* last = calls.empty() ? nullptr : &calls.back();
    const bool per_image = jobs[r.job].seed_mode == SeedMode::PerImage;
    if (last && last->job == r.job && (!per_image || (!planned && last->first + last->count == r.index))) {
      if (per_image) ++last->count;
      last->write.push_back(r.index);
      continue;
    }
    if (per_image) calls.push_back({r.job, r.index, 1, {r.index}});
    else calls.push_back({r.job, 0, jobs[r.job].batch, {r.index}});
  }
  return calls;
}

void check_one_gpu(const std::vector<Job>& jobs) {
  const Job* first = nullptr;
  for (const Job& j : jobs) {
    if (j.device.ordinal < 0) continue;
    if (first && first->device.ordinal != j.device.ordinal)
      throw_usage(prefix(j.origin) + "--device " + j.device.text() + ": this run already uses " + first->device.text() + " (" +
                  first->origin + "); one process drives one GPU: run one process per GPU");
    if (!first) first = &j;
  }
}

}  // namespace sdgen::cli
