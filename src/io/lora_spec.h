// What names a LoRA: --lora FILE[:SCALE] and A1111's <lora:NAME:SCALE> prompt tags, read without
// opening a file (io/lora.h merges them). Kept apart so that the option and prompt-file readers
// (and their fuzz target) need none of the merge code.
#pragma once
#include <string>
#include <vector>

namespace sdgen {

struct LoraSpec {
  std::string file;
  float scale = 1.0f;
  bool operator==(const LoraSpec& o) const { return file == o.file && scale == o.scale; }
};

// "FILE[:SCALE]": the whole spec when it names an existing file or has no ':' followed by a number.
// Error(kUsage) for a SCALE that is not a finite number.
LoraSpec parse_lora_spec(const std::string& spec);
// The same for another option's FILE[:SCALE] (--control: FILE may be a folder), `option` in messages.
LoraSpec parse_file_scale(const std::string& option, const std::string& spec);
// Removes A1111's <lora:NAME> and <lora:NAME:SCALE> tags from a prompt, appending each as
// dir/NAME.safetensors (NAME as given when it ends in .safetensors) to *found. Error(kUsage) for a
// malformed tag.
std::string extract_lora_tags(const std::string& prompt, const std::string& lora_dir, std::vector<LoraSpec>* found);

}  // namespace sdgen
