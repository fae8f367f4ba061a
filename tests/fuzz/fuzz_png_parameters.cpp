// libFuzzer target: --from-png's reading (src/io/png_text.cpp, src/cli/infotext.cpp): a file's PNG
// chunks walked for the "parameters" text (tEXt, zTXt, iTXt, inflated with a cap), the text split
// into prompts and "Label: value" pairs (quoted values unquoted), each label applied to a job
// through the settings table. Errors are sdgen::Error; anything else is a finding.
#include "cli/infotext.h"
#include "io/png_text.h"
#include "sdgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  std::string text;
  try {
    text = sdgen::png_text_from_bytes(bytes, "parameters", "in.png", "--from-png");
  } catch (const sdgen::Error&) {
    text = std::string(reinterpret_cast<const char*>(data), size);  // the text alone, too
  }
  try {
    sdgen::cli::Job job;
    sdgen::cli::apply_infotext(job, sdgen::cli::parse_infotext(text), "--from-png in.png");
  } catch (const sdgen::Error&) {
  }
  return 0;
}
