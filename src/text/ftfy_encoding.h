// ftfy's mojibake detection and repair (the fix_encoding step of fix_text; see text_clean.h).
// Internal to src/text.
#pragma once
#include <string>

namespace sdgen {
namespace text {

// ftfy.badness.is_bad (ftfy_badness.cpp): does the text contain a sequence typical of mojibake?
bool ftfy_is_bad(const std::u32string& s);
// ftfy.fix_encoding with the default config.
std::u32string ftfy_fix_encoding(const std::u32string& s);
// ftfy.fixes.fix_c1_controls: U+0080..U+009F read as their windows-1252 bytes.
std::u32string ftfy_fix_c1_controls(const std::u32string& s);

}  // namespace text
}  // namespace sdgen
