// A generation run of sd-gen, in the order it happens: read the command line (and prompt file) →
// plan the images (shards, manifest resume, calls) → prepare the output folders → per call, load
// the pipeline when its key changes, generate, write the images and their records.
#pragma once
#include <functional>
#include <string>

namespace sdgen::cli {

struct RunHooks {
  std::function<void()> check_interrupted;                 // throws when a stop was requested
  std::function<void(const std::string&)> dir_created;     // a folder this run made (removed if it fails)
};

// Returns the exit code (0), or throws Error with the code of what went wrong.
int run_generation(int argc, char** argv, const RunHooks& hooks);

}  // namespace sdgen::cli
