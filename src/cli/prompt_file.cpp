// Prompt files (plain lines or JSON Lines) as Jobs, and the file names a Job's pattern gives. Kept
// apart from the rest of the options (which reach the backends) so that the fuzz target
// tests/fuzz/fuzz_prompt_file.cpp builds from this file, batch.cpp and the file writers alone.
#include <sys/stat.h>

#include <cerrno>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/batch.h"
#include "cli/options.h"
#include "cli/settings.h"
#include "core/json_unique.h"
#include "sdgen/error.h"

namespace sdgen::cli {

namespace {
// A prompt is at most a few thousand tokens (the text encoder reads 75 a chunk; even a long
// A1111-style prompt with BREAKs is a few KiB), and a JSON line adds only its keys, so 1 MiB a
// line is far above any real one while keeping what one line can cost (the text, its JSON and its
// Job) to a few MiB.
constexpr size_t kMaxPromptLineBytes = size_t(1) << 20;
// A whole file: 64 MiB is a million prompts of 64 bytes. What it is read into is about 650 bytes
// a prompt (its Job; measured: 626 MiB peak for a million one-letter lines), so the prompt count
// is bounded too, at a million: a large dataset run's file, and about a third of even fp16
// SD v1.5 weights.
constexpr size_t kMaxPromptFileBytes = size_t(64) << 20;
constexpr size_t kMaxPromptFileJobs = 1000000;

[[noreturn]] void bad(const Job& job, const std::string& what) {
  throw_usage((job.origin.empty() ? std::string() : job.origin + ": ") + what);
}

std::string slug(const std::string& s, size_t max_len) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max_len) break;
    if (std::isalnum(c)) out += (char)std::tolower(c);
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "image" : out;
}
}  // namespace

std::vector<Job> read_prompt_file(const std::string& path, const Job& defaults) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw_usage("--prompt-file " + path + ": is a folder, not a file");
  // A file, or a pipe (a shell's <(...), /dev/stdin fed by one); never a device such as /dev/zero,
  // which has no end.
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    throw_usage("--prompt-file " + path + ": not a regular file or a pipe");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_usage("--prompt-file " + path + ": cannot open: " + std::strerror(errno));
  std::vector<Job> jobs;
  std::string line;
  int lineno = 0;
  size_t total = 0;
  // The bounds hold while reading, so that a pipe without end or a file of one endless line stops
  // at them instead of at the memory's end.
  auto next_line = [&]() -> bool {
    line.clear();
    std::streambuf* sb = in.rdbuf();
    for (;;) {
      const int c = sb->sbumpc();
      if (c == std::char_traits<char>::eof()) return !line.empty();  // a last line without its newline
      if (++total > kMaxPromptFileBytes)
        throw_usage("--prompt-file " + path + ": larger than " + std::to_string(kMaxPromptFileBytes >> 20) +
                    " MiB, the most a prompt file may hold; split it into several files");
      if (c == '\n') return true;
      if (line.size() >= kMaxPromptLineBytes)
        throw_usage(path + ":" + std::to_string(lineno + 1) + ": the line is longer than " +
                    std::to_string(kMaxPromptLineBytes >> 20) + " MiB, the most a prompt-file line may hold");
      line += (char)c;
    }
  };
  while (next_line()) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    strip_bom(line);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    Job job = defaults;
    job.origin = path + ":" + std::to_string(lineno);
    if (jobs.size() >= kMaxPromptFileJobs)
      bad(job, "more than " + std::to_string(kMaxPromptFileJobs) +
                   " prompts, the most one prompt file may hold; split it into several files");
    if (line[first] != '{') {
      if (line.find('\0') != std::string::npos) bad(job, "the line holds a NUL character");
      job.prompt = line;
      finish_job(job);
      jobs.push_back(job);
      continue;
    }
    nlohmann::json j;
    std::string duplicate;
    try {
      j = parse_json_unique_keys(line.begin(), line.end(), &duplicate);
    } catch (const std::exception& e) {
      bad(job, std::string("not valid JSON: ") + e.what());
    }
    if (!duplicate.empty()) bad(job, "key \"" + duplicate + "\" is given twice");
    apply_prompt_line(job, j);
    finish_job(job);
    jobs.push_back(job);
  }
  if (jobs.empty()) throw_usage("--prompt-file " + path + ": no prompts in it");
  return jobs;
}

std::string expand_name(const std::string& pattern, int n, uint64_t seed, int i, const Job& job) {
  std::string out;
  for (size_t p = 0; p < pattern.size();) {
    if (pattern[p] == '{') {
      size_t close = pattern.find('}', p);
      if (close != std::string::npos) {
        std::string key = pattern.substr(p + 1, close - p - 1);
        char buf[32];
        bool known = true;
        if (key == "n") std::snprintf(buf, sizeof buf, "%05d", n), out += buf;
        else if (key == "seed") out += std::to_string(seed);
        else if (key == "i") out += std::to_string(i);
        else if (key == "prompt") out += slug(job.prompt, 40);
        else if (key == "steps") out += std::to_string(job.steps);
        else if (key == "w") out += std::to_string(job.width);
        else if (key == "h") out += std::to_string(job.height);
        else known = false;
        if (known) {
          p = close + 1;
          continue;
        }
        throw_usage("--name: unknown field {" + key + "} (n, seed, i, prompt, steps, w, h)");
      }
    }
    if (pattern[p] == '/') throw_usage("--name must not contain '/': use --out for folders");
    out += pattern[p++];
  }
  if (out.size() < 4 || out.compare(out.size() - 4, 4, ".png") != 0) out += ".png";
  return out;
}

int cuda_ordinal(const std::string& d) {
  if (d.compare(0, 5, "cuda:") != 0 || d.size() < 6 || d.size() > 9) return -1;
  for (size_t p = 5; p < d.size(); ++p)
    if (d[p] < '0' || d[p] > '9') return -1;
  return std::stoi(d.substr(5));
}

}  // namespace sdgen::cli
