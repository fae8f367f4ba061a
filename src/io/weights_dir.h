// Files a user downloads once (OpenAI's CLIP BPE list, SD v1.5 checkpoints) live in a weights/
// folder: the working directory's, else the program's own, which the program names (sd-gen: its
// source tree's weights/, where weights/download_sd15.sh puts them).
#pragma once
#include <string>
#include <vector>

namespace sdgen {

// The weights/ folder searched after ./weights; empty: none.
void set_weights_fallback_dir(const std::string& dir);
const std::string& weights_fallback_dir();

// The path of the first of `names` found in ./weights, else the first found in the fallback folder
// (the folders in that order, each for every name in turn); "" when there is none.
std::string find_weights_file(const std::vector<std::string>& names);

}  // namespace sdgen
