// --from-png FILE: a generation's settings read back from a PNG's "parameters" text (io/png_text.h),
// ours or A1111's. The text (A1111's infotext):
//   <prompt, one or more lines>
//   Negative prompt: <negative prompt, one or more lines>      (optional)
//   Label: value, Label: value, ...                            (the last line, when it has >= 3 pairs)
// A value holding ',', ':' or a newline is a JSON string ("a: 1234, b: 5678"). Each line of the
// prompts is trimmed of surrounding white space, as A1111 reads it.
//
// Every label maps to a setting through the settings table (Setting::a1111, cli/settings.h): the
// setting reads the value (Setting::from_a1111, else the command line's parse). Labels that only
// inform (the model, the weights' names and hashes, the version, the batch position) are skipped;
// any other label is a usage error naming it and the file. The PNG's values are defaults: every
// option on the command line wins, wherever it stands.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "cli/job.h"

namespace sdgen::cli {

struct Infotext {
  std::string prompt, negative_prompt;
  std::vector<std::pair<std::string, std::string>> fields;  // label, value (unquoted), in order
};

Infotext parse_infotext(const std::string& text);

// The labels --from-png skips besides the table's informational ones (Model, Model hash, ...).
const std::vector<std::string>& ignored_a1111_labels();

// Sets the job's prompts and settings from the text; `at` names the file in errors
// ("--from-png x.png"). Throws Error(kUsage): `at: "Face restoration: CodeFormer" is not a setting
// sd-gen reproduces`, or `at: "Sampler: UniPC Karras": not a sampler sd-gen has`.
void apply_infotext(Job& job, const Infotext& text, const std::string& at);
// The same from the PNG file's "parameters" text.
void apply_png_parameters(Job& job, const std::string& png_path);

}  // namespace sdgen::cli
