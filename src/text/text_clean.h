// Prompt cleanup before CLIP tokenization, matching transformers' CLIPTokenizer with ftfy installed:
// whitespace_clean(ftfy.fix_text(text)).lower() (ftfy 6.3.1 defaults, Python 3.11 str semantics).
//
// What transformers 4.57.6 actually runs (tokenization_clip.py, CLIPTokenizer._tokenize) is
// `whitespace_clean(self.fix_text(text)).lower()` — there is NO extra html.unescape, unlike OpenAI's
// SimpleTokenizer.basic_clean (ftfy.fix_text then html.unescape twice) that DESIGN.md describes.
// We follow transformers. ftfy's own unescape_html step (default "auto") still decodes entities, and
// fix_text repeats its fixers until nothing changes, so "&amp;amp;" still ends as "&".
//
// ftfy.fix_text, step by step (all implemented here):
// - The text is cut after every '\n' into segments, each fixed on its own. unescape_html="auto"
//   turns off for a segment containing '<' and for every segment after it (ftfy's config is sticky).
// - Per segment, repeated until the segment stops changing:
//   unescape_html (the ';'-terminated HTML5 entities, their all-caps forms, numeric &#..; refs with
//   Python's html.unescape rules), fix_encoding (see below), fix_c1_controls, fix_latin_ligatures,
//   fix_character_width (U+3000 and U+FF01..U+FFEF to their NFKC forms), uncurl_quotes,
//   fix_line_breaks, fix_surrogates (a no-op: our input is decoded UTF-8 and has no surrogates),
//   remove_terminal_escapes, remove_control_chars, NFC.
// - fix_encoding (mojibake repair): the badness heuristic (all of ftfy.badness.BADNESS_RE), then
//   re-decoding as UTF-8 text that encodes in one of ftfy's ten single-byte codecs (tables generated
//   from ftfy's by tests/reference/make_charmaps.py), with restore_byte_a0, replace_lossy_sequences
//   and the utf-8-variants decoder (CESU-8 pairs, Java's C0 80); decode_inconsistent_utf8 for
//   mojibake runs inside other text; the latin-1 -> windows-1252 step; fix_c1_controls.
//   A brute-force check of every code point assigned in Unicode 14 (alone, between letters, and
//   after a capital), plus random mojibake, matched transformers exactly.
// Other known differences: Unicode data comes from utf8proc (Unicode 15) where Python 3.11 uses 14.0
// and the `regex` module its own (newer) tables, so characters assigned after Unicode 14 may differ;
// invalid UTF-8 input bytes become U+FFFD (Python strings cannot hold them at all).
#pragma once
#include <string>

namespace sdgen {
namespace text {

// ftfy.fix_text(text) with its default configuration.
std::u32string ftfy_fix_text(const std::u32string& text);
// transformers' whitespace_clean: runs of `regex` \s to one space, then Python str.strip().
std::u32string whitespace_clean(const std::u32string& text);
// Python str.lower(): full lowercase mapping (U+0130 -> "i\u0307") and the Final_Sigma rule.
std::u32string python_lower(const std::u32string& text);
// The whole cleanup: python_lower(whitespace_clean(ftfy_fix_text(text))).
std::u32string clip_clean(const std::u32string& text);
// transformers 5's CLIPTokenizer cleanup (its tokenizers normalizer: NFC, runs of \s to one space,
// Lowercase), what current diffusers gives: no ftfy, no HTML unescaping, nothing stripped, and a
// per-character lowercase (Rust's char::to_lowercase: U+0130 -> "i\u0307", no Final_Sigma rule).
std::u32string basic_clean(const std::u32string& text);

// UTF-8 <-> UTF-32. Invalid input bytes decode to U+FFFD, one per maximal invalid subsequence.
std::u32string utf8_decode(const std::string& s);
std::string utf8_encode(const std::u32string& s);
void utf8_append(std::string& out, char32_t c);

// `regex` module's \s (Unicode White_Space) — what CLIP's pre-tokenizer and whitespace_clean use.
bool is_regex_space(char32_t c);

}  // namespace text
}  // namespace sdgen
