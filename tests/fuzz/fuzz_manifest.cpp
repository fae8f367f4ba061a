// libFuzzer target: a --manifest file as --skip-existing reads it back (src/cli/manifest.cpp):
// every line parsed as a record or skipped with a warning, paths decoded (hex where not UTF-8),
// then the resume question asked for a few images of a fixed job. Errors are sdgen::Error;
// anything else (a crash, a sanitizer report, a hang) is a finding.
#include "cli/manifest.h"
#include "fuzz_file.h"
#include "sdgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    int warnings = 0;
    sdgen::cli::Manifest m(fuzz_write_temp(data, size), [&](const std::string&) { ++warnings; });
    sdgen::cli::Job job;
    job.prompt = "cat";
    job.origin = "p.txt:1";
    for (uint64_t seed : {0ull, 1ull, 42ull})
      for (int index = 0; index < 3; ++index)
        m.done(sdgen::cli::job_identity(job, seed, "abc"), index, "/tmp/sdgen_fuzz_out");
  } catch (const sdgen::Error&) {
  }
  return 0;
}
