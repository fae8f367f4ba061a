// libFuzzer target: a prompt file (plain lines or JSON Lines, src/cli/prompt_file.cpp) as a batch
// script would hand it over, through what the run does with it before any model work: each job's
// settings checked, its name pattern checked and expanded, the names checked for collisions, the images split into
// shards and numbered. Errors are sdgen::Error; anything else (a crash, a sanitizer report, a hang)
// is a finding.
#include "cli/batch.h"
#include "cli/options.h"
#include "cli/settings.h"
#include "fuzz_file.h"
#include "sdgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sdgen::cli::Job defaults;
    defaults.prompt = "";
    const std::vector<sdgen::cli::Job> jobs = sdgen::cli::read_prompt_file(fuzz_write_temp(data, size), defaults);
    for (const sdgen::cli::Job& job : jobs) {
      sdgen::cli::check_settings(job);  // the ranges validate_job checks first
      sdgen::cli::check_name_pattern(job);
      sdgen::cli::expand_name(job.name_pattern, 99999, job.seed.value_or(0), job.batch - 1, job);
    }
    sdgen::cli::check_distinct_names(jobs);
    sdgen::cli::planned_numbers(jobs);
    for (int n = 1; n <= 3; ++n)
      for (int k = 0; k < n; ++k) sdgen::cli::shard_images(jobs, sdgen::cli::Shard{k, n});
  } catch (const sdgen::Error&) {
  }
  return 0;
}
