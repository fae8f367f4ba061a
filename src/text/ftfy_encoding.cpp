// ftfy 6.3.1's fix_encoding, reimplemented: re-decoding mojibake as UTF-8 through ftfy's
// single-byte codecs, its byte-level transcoders, and the fix for mojibake runs inside other text.
// Whether text looks like mojibake at all is ftfy_badness.cpp's job.
#include "text/ftfy_encoding.h"

#include <algorithm>
#include <optional>
#include <vector>

namespace sdgen {
namespace text {
namespace {

// ftfy.chardata.UTF8_CLUES: characters that start a 2/3/4-byte UTF-8 sequence, or continue one,
// when UTF-8 was decoded with one of ftfy's single-byte codecs ("strict" leaves out the space and
// the punctuation that also occurs in ordinary text).
struct CpRange { char32_t lo, hi; };
const CpRange kFirst2[] = {
    {0xC2, 0xDF}, {0x100, 0x100}, {0x102, 0x102}, {0x106, 0x106}, {0x10C, 0x10C}, {0x10E, 0x10E},
    {0x110, 0x110}, {0x112, 0x112}, {0x116, 0x116}, {0x118, 0x118}, {0x11A, 0x11A}, {0x11E, 0x11E},
    {0x122, 0x122}, {0x12A, 0x12A}, {0x130, 0x130}, {0x136, 0x136}, {0x139, 0x139}, {0x13B, 0x13B},
    {0x141, 0x141}, {0x143, 0x143}, {0x145, 0x145}, {0x147, 0x147}, {0x14C, 0x14C}, {0x150, 0x150},
    {0x158, 0x158}, {0x15A, 0x15A}, {0x15E, 0x15E}, {0x160, 0x160}, {0x162, 0x162}, {0x16A, 0x16A},
    {0x16E, 0x16E}, {0x170, 0x170}, {0x172, 0x172}, {0x179, 0x179}, {0x17B, 0x17B}, {0x17D, 0x17D},
    {0x392, 0x3A1}, {0x3A3, 0x3AF}, {0x412, 0x42F},
};
const CpRange kFirst3[] = {
    {0xE0, 0xEF}, {0x101, 0x101}, {0x103, 0x103}, {0x105, 0x105}, {0x107, 0x107}, {0x10D, 0x10D},
    {0x10F, 0x10F}, {0x113, 0x113}, {0x117, 0x117}, {0x119, 0x119}, {0x11B, 0x11B}, {0x123, 0x123},
    {0x12B, 0x12B}, {0x12F, 0x12F}, {0x137, 0x137}, {0x13A, 0x13A}, {0x13C, 0x13C}, {0x155, 0x155},
    {0x17A, 0x17A}, {0x3B0, 0x3BF}, {0x430, 0x43F},
};
const CpRange kFirst4[] = {
    {0xF0, 0xF0}, {0xF3, 0xF3}, {0x111, 0x111}, {0x11F, 0x11F}, {0x161, 0x161}, {0x3C0, 0x3C0},
    {0x3C3, 0x3C3}, {0x440, 0x440}, {0x443, 0x443},
};
const CpRange kCont[] = {
    {0x20, 0x20}, {0x80, 0xBF}, {0xC6, 0xC6}, {0xD8, 0xD8}, {0xE6, 0xE6}, {0xF8, 0xF8}, {0x104, 0x105},
    {0x13D, 0x13E}, {0x141, 0x142}, {0x152, 0x153}, {0x156, 0x157}, {0x15A, 0x15B}, {0x15E, 0x161},
    {0x164, 0x165}, {0x178, 0x17E}, {0x192, 0x192}, {0x2C6, 0x2C7}, {0x2D8, 0x2D8}, {0x2DB, 0x2DD},
    {0x384, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x38F}, {0x401, 0x40C}, {0x40E, 0x40F},
    {0x451, 0x45C}, {0x45E, 0x45F}, {0x490, 0x491}, {0x2013, 0x2015}, {0x2018, 0x201A}, {0x201C, 0x201E},
    {0x2020, 0x2022}, {0x2026, 0x2026}, {0x2030, 0x2030}, {0x2039, 0x203A}, {0x20AC, 0x20AC},
    {0x2116, 0x2116}, {0x2122, 0x2122},
};
const CpRange kContStrict[] = {
    {0x80, 0xBF}, {0xC6, 0xC6}, {0xD8, 0xD8}, {0xE6, 0xE6}, {0xF8, 0xF8}, {0x104, 0x105}, {0x13D, 0x13E},
    {0x141, 0x142}, {0x152, 0x153}, {0x156, 0x157}, {0x15A, 0x15B}, {0x15E, 0x161}, {0x164, 0x165},
    {0x178, 0x17E}, {0x192, 0x192}, {0x2C6, 0x2C7}, {0x2D8, 0x2D8}, {0x2DB, 0x2DD}, {0x384, 0x386},
    {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x38F}, {0x401, 0x40C}, {0x40E, 0x40F}, {0x451, 0x45C},
    {0x45E, 0x45F}, {0x490, 0x491}, {0x2020, 0x2021}, {0x2030, 0x2030}, {0x2039, 0x203A}, {0x20AC, 0x20AC},
    {0x2116, 0x2116}, {0x2122, 0x2122},
};

template <size_t N>
bool in_ranges(const CpRange (&table)[N], char32_t c) {
  for (const CpRange& r : table)
    if (c >= r.lo && c <= r.hi) return true;
  return false;
}

// UTF8_DETECTOR_RE = (?<![cont_strict])([first2][cont]|[first3][cont]{2}|[first4][cont]{3})+ :
// the length of its match at s[i] (0 if none). The three first-byte sets are disjoint.
size_t utf8_detector_at(const std::u32string& s, size_t i) {
  if (i > 0 && in_ranges(kContStrict, s[i - 1])) return 0;
  size_t k = i;
  while (k < s.size()) {
    size_t need = in_ranges(kFirst2, s[k]) ? 1 : in_ranges(kFirst3, s[k]) ? 2 : in_ranges(kFirst4, s[k]) ? 3 : 0;
    if (need == 0 || k + need >= s.size()) break;
    size_t q = 1;
    while (q <= need && in_ranges(kCont, s[k + q])) ++q;
    if (q <= need) break;
    k += need + 1;
  }
  return k - i;
}

// windows-1252's 0x80..0x9F; 0 where the byte is unassigned (the sloppy codec passes those through
// as U+0080..U+009F, like latin-1).
const char32_t kCp1252High[32] = {
    0x20AC, 0, 0x201A, 0x192, 0x201E, 0x2026, 0x2020, 0x2021, 0x2C6, 0x2030, 0x160, 0x2039, 0x152, 0, 0x17D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x2DC, 0x2122, 0x161, 0x203A, 0x153, 0, 0x17E, 0x178};

char32_t sloppy1252_decode(unsigned char b) {
  if (b == 0x1A) return 0xFFFD;
  if (b >= 0x80 && b < 0xA0 && kCp1252High[b - 0x80] != 0) return kCp1252High[b - 0x80];
  return b;
}

// The single-byte codecs ftfy.fix_encoding tries, in its order (latin-1, sloppy-windows-1252,
// -1251, -1250, -1253, -1254, -1257, iso-8859-2, macroman, cp437).
struct Charmap {
  const char* name;
  bool sloppy;      // replace_lossy_sequences applies
  bool restore_a0;  // restore_byte_a0 applies (not to macroman)
  char32_t decode[256];
};
const Charmap kCharmaps[] = {
#include "text/charmaps.inc"
};

// text.encode(codec), or nothing when some character has no byte in it (possible_encoding fails).
std::optional<std::string> encode_charmap(const Charmap& cm, const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x80 && cm.decode[c] == c) { out.push_back(static_cast<char>(c)); continue; }
    int found = -1;
    if (cm.decode[0x1A] == c) found = 0x1A;
    for (int b = 0x80; b < 0x100 && found < 0; ++b)
      if (cm.decode[b] == c) found = b;
    if (found < 0) return std::nullopt;
    out.push_back(static_cast<char>(found));
  }
  return out;
}

// Python's strict UTF-8 decoder: any invalid byte fails the whole decode.
std::optional<std::u32string> decode_utf8_strict(const std::string& b) {
  std::u32string out;
  const size_t n = b.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = b[i];
    if (c < 0x80) { out.push_back(c); ++i; continue; }
    int len;
    char32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return std::nullopt;
    if (i + len > n) return std::nullopt;
    for (int k = 1; k < len; ++k) {
      unsigned char d = b[i + k];
      if ((d & 0xC0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    out.push_back(cp);
    i += len;
  }
  return out;
}

// ftfy's "utf-8-variants" codec (strict): UTF-8 that may also hold Java's C0 80 for U+0000 and
// CESU-8 surrogate pairs (ED A0-AF xx ED B0-BF xx) for supplementary characters.
std::optional<std::u32string> decode_utf8_variants(const std::string& b) {
  std::u32string out;
  const size_t n = b.size();
  auto u = [&](size_t k) { return static_cast<unsigned char>(b[k]); };
  // ftfy finds these with a bytes regex whose `$` also matches before a final '\n', so a final
  // "C0 \n" or a CESU-8 pair whose last byte is a final '\n' decodes too (the '\n' eaten).
  const bool final_nl = n > 0 && b[n - 1] == '\n';
  for (size_t i = 0; i < n;) {
    if (u(i) == 0xC0 && i + 1 < n && (u(i + 1) == 0x80 || (final_nl && i + 2 == n))) {
      out.push_back(0);
      i += 2;
      continue;
    }
    if (u(i) == 0xED && i + 5 < n && u(i + 1) >= 0xA0 && u(i + 1) <= 0xAF && (u(i + 2) & 0xC0) == 0x80 &&
        u(i + 3) == 0xED && u(i + 4) >= 0xB0 && u(i + 4) <= 0xBF &&
        ((u(i + 5) & 0xC0) == 0x80 || (final_nl && i + 6 == n))) {
      out.push_back(0x10000 + ((u(i + 1) & 0x0Fu) << 16) + ((u(i + 2) & 0x3Fu) << 10) + ((u(i + 4) & 0x0Fu) << 6) +
                    (u(i + 5) & 0x3Fu));
      i += 6;
      continue;
    }
    size_t len = u(i) < 0x80 ? 1 : u(i) < 0xE0 ? 2 : u(i) < 0xF0 ? 3 : 4;
    if (i + len > n) return std::nullopt;
    auto one = decode_utf8_strict(b.substr(i, len));
    if (!one) return std::nullopt;
    out += *one;
    i += len;
  }
  return out;
}

bool cont_no_space_no_a0_85(unsigned char b) {  // [\x80-\x84\x86-\x9f\xa1-\xbf]
  return b >= 0x80 && b <= 0xBF && b != 0x85 && b != 0xA0;
}
bool cont(unsigned char b) { return b >= 0x80 && b <= 0xBF; }

// ALTERED_UTF8_RE at position i: length of the match, 0 if none.
size_t altered_utf8_at(const std::string& s, size_t i) {
  const size_t n = s.size();
  auto at = [&](size_t k) -> int { return k < n ? static_cast<unsigned char>(s[k]) : -1; };
  const int a = at(i), b = at(i + 1), c = at(i + 2), d = at(i + 3);
  if ((a == 0xC2 || a == 0xC3 || a == 0xC5 || a == 0xCE || a == 0xD0 || a == 0xD9) && b == ' ') return 2;
  if ((a == 0xE2 || a == 0xE3) && b == ' ' && c >= 0 && cont_no_space_no_a0_85(c)) return 3;
  if (a >= 0xE0 && a <= 0xE3 && b >= 0 && cont_no_space_no_a0_85(b) && c == ' ') return 3;
  if (a == 0xF0) {
    if (b == ' ' && c >= 0 && cont(c) && d >= 0 && cont(d)) return 4;
    if (b >= 0 && cont(b) && c == ' ' && d >= 0 && cont(d)) return 4;
    if (b >= 0 && cont(b) && c >= 0 && cont(c) && d == ' ') return 4;
  }
  return 0;
}

bool altered_utf8_search(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (altered_utf8_at(s, i)) return true;
  return false;
}

// ftfy.fixes.restore_byte_a0.
std::string restore_byte_a0(const std::string& in) {
  // A_GRAVE_WORD_RE: b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 ".
  std::string s;
  for (size_t i = 0; i < in.size(); ++i) {
    if (static_cast<unsigned char>(in[i]) == 0xC3 && i + 1 < in.size() && in[i + 1] == ' ') {
      auto starts = [&](const char* w) { return in.compare(i + 2, std::char_traits<char>::length(w), w) == 0; };
      if (!(starts(" ") || starts("quele") || starts("quela") || starts("quilo") || starts("s "))) {
        s += "\xC3\xA0 ";
        ++i;
        continue;
      }
    }
    s.push_back(in[i]);
  }
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t len = altered_utf8_at(s, i);
    if (len == 0) { out.push_back(s[i++]); continue; }
    for (size_t k = 0; k < len; ++k) out.push_back(s[i + k] == ' ' ? '\xA0' : s[i + k]);
    i += len;
  }
  return out;
}

// ftfy.fixes.replace_lossy_sequences: LOSSY_UTF8_RE matches become the UTF-8 of U+FFFD.
std::string replace_lossy_sequences(const std::string& s) {
  const size_t n = s.size();
  auto at = [&](size_t k) -> int { return k < n ? static_cast<unsigned char>(s[k]) : -1; };
  auto sub = [](int b) { return b == 0x1A; };
  auto subq = [](int b) { return b == 0x1A || b == '?'; };
  auto subc = [](int b) { return b == 0x1A || (b >= 0x80 && b <= 0xBF); };
  auto subqc = [](int b) { return b == 0x1A || b == '?' || (b >= 0x80 && b <= 0xBF); };
  std::string out;
  for (size_t i = 0; i < n;) {
    const int a = at(i), b = at(i + 1), c = at(i + 2), d = at(i + 3), e = at(i + 4), f = at(i + 5);
    size_t len = 0;
    if (a >= 0xC2 && a <= 0xDF && sub(b)) len = 2;
    else if (a >= 0xC2 && a <= 0xC3 && b == '?') len = 2;
    else if (a == 0xED && b >= 0xA0 && b <= 0xAF && subq(c) && d == 0xED && e >= 0xB0 && e <= 0xBF && subqc(f)) len = 6;
    else if (a == 0xED && b >= 0xA0 && b <= 0xAF && subqc(c) && d == 0xED && e >= 0xB0 && e <= 0xBF && subq(f)) len = 6;
    else if (a >= 0xE0 && a <= 0xEF && subq(b) && subc(c)) len = 3;
    else if (a >= 0xE0 && a <= 0xEF && subc(b) && subq(c)) len = 3;
    else if (a >= 0xF0 && a <= 0xF4 && subq(b) && subc(c) && subc(d)) len = 4;
    else if (a >= 0xF0 && a <= 0xF4 && subc(b) && subq(c) && subc(d)) len = 4;
    else if (a >= 0xF0 && a <= 0xF4 && subc(b) && subc(c) && subq(d)) len = 4;
    else if (a == 0x1A) len = 1;
    if (len == 0) { out.push_back(s[i++]); continue; }
    out += "\xEF\xBF\xBD";
    i += len;
  }
  return out;
}

bool all_ascii(const std::u32string& s) {
  return std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x80; });
}

// ftfy._fix_encoding_one_step_and_explain.
std::u32string fix_encoding_one_step(const std::u32string& text) {
  if (text.empty() || all_ascii(text) || !ftfy_is_bad(text)) return text;
  std::optional<std::string> latin1;
  for (const Charmap& cm : kCharmaps) {
    std::optional<std::string> bytes = encode_charmap(cm, text);
    if (&cm == &kCharmaps[0]) latin1 = bytes;
    if (!bytes) continue;
    std::string b = *bytes;
    if (cm.restore_a0 && altered_utf8_search(b)) b = restore_byte_a0(b);
    if (cm.sloppy) b = replace_lossy_sequences(b);
    const bool variants = b.find('\xED') != std::string::npos || b.find('\xC0') != std::string::npos;
    if (auto fixed = variants ? decode_utf8_variants(b) : decode_utf8_strict(b)) return *fixed;
  }
  // Mojibake inside text that does not re-encode as a whole: fix each UTF-8-looking run alone.
  std::u32string fixed;
  bool found = false;
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_detector_at(text, i);
    if (len == 0) { fixed.push_back(text[i++]); continue; }
    found = true;
    const std::u32string run = text.substr(i, len);
    fixed += run.size() < text.size() && ftfy_is_bad(run) ? ftfy_fix_encoding(run) : run;
    i += len;
  }
  if (found && fixed != text) return fixed;
  // latin-1 text that is not windows-1252 text: ftfy re-decodes it as (strict) windows-1252.
  // (ftfy's check for "windows-1252" among the possible encodings never succeeds: its list names
  // "sloppy-windows-1252".)
  if (latin1) {
    std::u32string fixed;
    bool ok = true;
    for (unsigned char b : *latin1) {
      if (b >= 0x80 && b < 0xA0 && kCp1252High[b - 0x80] == 0) { ok = false; break; }
      fixed.push_back(b == 0x1A ? char32_t{0x1A} : (b >= 0x80 && b < 0xA0 ? kCp1252High[b - 0x80] : char32_t{b}));
    }
    if (ok && fixed != text) return fixed;
  }
  if (std::any_of(text.begin(), text.end(), [](char32_t c) { return c >= 0x80 && c <= 0x9F; }))
    return ftfy_fix_c1_controls(text);
  return text;
}

}  // namespace

std::u32string ftfy_fix_encoding(const std::u32string& s) {
  std::u32string text = s;
  while (true) {
    std::u32string next = fix_encoding_one_step(text);
    if (next == text) return text;
    text = std::move(next);
  }
}

std::u32string ftfy_fix_c1_controls(const std::u32string& s) {
  std::u32string out = s;
  for (char32_t& c : out)
    if (c >= 0x80 && c <= 0x9F) c = sloppy1252_decode(static_cast<unsigned char>(c));
  return out;
}

}  // namespace text
}  // namespace sdgen
