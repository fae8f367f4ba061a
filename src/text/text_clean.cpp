// The prompt cleanup of transformers' CLIPTokenizer with ftfy installed: ftfy.fix_text's fixers,
// whitespace_clean and Python's str.lower(). What is covered is documented in text_clean.h.
#include "text/text_clean.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "text/ftfy_encoding.h"

namespace sdgen {
namespace text {
namespace {

struct Entity { const char* name; const char* text; };
const Entity kEntities[] = {
#include "text/html_entities.inc"
};

// html.unescape's rules for one numeric reference &#NNN; / &#xHHH; (number already parsed; values
// past U+10FFFF are clamped to 0x110000 by the caller).
std::u32string numeric_charref(char32_t num) {
  if (num == 0) return U"\uFFFD";
  if (num == 0x0D) return U"\r";
  if (num >= 0x80 && num <= 0x9F) return ftfy_fix_c1_controls(std::u32string(1, num));
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) || num == 0x7F ||
      (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
    return U"";
  return std::u32string(1, num);
}

bool ascii_alnum(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// ftfy.fixes.unescape_html: HTML_ENTITY_RE = &#?[0-9A-Za-z]{1,24}; replaced where ftfy would.
std::u32string unescape_html(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  std::u32string out;
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    if (s[i] != '&') { out.push_back(s[i++]); continue; }
    size_t j = i + 1;
    const bool hash = j < n && s[j] == '#';
    if (hash) ++j;
    size_t k = j;
    while (k < n && ascii_alnum(s[k])) ++k;
    if (k - j < 1 || k - j > 24 || k >= n || s[k] != ';') { out.push_back(s[i++]); continue; }
    const std::u32string match = s.substr(i, k + 1 - i);
    std::u32string repl = match;
    if (hash) {
      // Decoded only when the whole body is a number: otherwise html.unescape leaves a ';' behind
      // and ftfy keeps the original text. A result of ';' itself (&#59;) is kept as text for the
      // same reason.
      size_t b = j;
      int base = 10;
      if (s[b] == 'x' || s[b] == 'X') { base = 16; ++b; }
      bool ok = b < k;
      char32_t num = 0;
      for (size_t q = b; q < k && ok; ++q) {
        char32_t c = s[q];
        int d = (c >= '0' && c <= '9') ? int(c - '0')
                : (base == 16 && (c | 0x20) >= 'a' && (c | 0x20) <= 'f') ? int((c | 0x20) - 'a' + 10) : -1;
        if (d < 0) { ok = false; break; }
        num = std::min<char32_t>(num * base + d, 0x110000);
      }
      if (ok) {
        std::u32string r = numeric_charref(num);
        if (r.find(U';') == std::u32string::npos) repl = r;
      }
    } else {
      const std::string key = utf8_encode(match);
      auto it = std::lower_bound(std::begin(kEntities), std::end(kEntities), key,
                                 [](const Entity& e, const std::string& k2) { return std::strcmp(e.name, k2.c_str()) < 0; });
      if (it != std::end(kEntities) && key == it->name) repl = utf8_decode(it->text);
    }
    out += repl;
    i = k + 1;
  }
  return out;
}

// ftfy.fixes.remove_terminal_escapes: "\033\[((?:\d|;)*)([a-zA-Z])" removed (\d is Unicode Nd).
std::u32string remove_terminal_escapes(const std::u32string& s) {
  if (s.find(U'\x1b') == std::u32string::npos) return s;
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == '[') {
      size_t k = i + 2;
      while (k < s.size() && (s[k] == ';' || (s[k] <= 0x10FFFF && utf8proc_category(static_cast<utf8proc_int32_t>(s[k])) ==
                                                                     UTF8PROC_CATEGORY_ND)))
        ++k;
      if (k < s.size() && s[k] < 0x80 && ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'z')) {
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

// ftfy.chardata.LIGATURES (fix_latin_ligatures).
const char32_t* ligature(char32_t c) {
  switch (c) {
    case 0x132: return U"IJ";
    case 0x133: return U"ij";
    case 0x149: return U"\u02BCn";
    case 0x1F1: return U"DZ";
    case 0x1F2: return U"Dz";
    case 0x1F3: return U"dz";
    case 0x1C4: return U"D\u017D";
    case 0x1C5: return U"D\u017E";
    case 0x1C6: return U"d\u017E";
    case 0x1C7: return U"LJ";
    case 0x1C8: return U"Lj";
    case 0x1C9: return U"lj";
    case 0x1CA: return U"NJ";
    case 0x1CB: return U"Nj";
    case 0x1CC: return U"nj";
    case 0xFB00: return U"ff";
    case 0xFB01: return U"fi";
    case 0xFB02: return U"fl";
    case 0xFB03: return U"ffi";
    case 0xFB04: return U"ffl";
    case 0xFB05: return U"\u017Ft";
    case 0xFB06: return U"st";
    default: return nullptr;
  }
}

std::u32string nfkc_char(char32_t c) {
  std::string u;
  utf8_append(u, c);
  utf8proc_uint8_t* mapped = nullptr;
  utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(u.data()),
                                      static_cast<utf8proc_ssize_t>(u.size()), &mapped,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  std::u32string r = len < 0 ? std::u32string(1, c) : utf8_decode(std::string(reinterpret_cast<char*>(mapped), len));
  free(mapped);
  return r;
}

// ftfy.chardata.WIDTH_MAP: U+3000 -> ' ', U+FF01..U+FFEF -> NFKC form where that differs.
const std::u32string* width_map(char32_t c) {
  static const std::array<std::u32string, 0xFFF0 - 0xFF01> table = [] {
    std::array<std::u32string, 0xFFF0 - 0xFF01> t;
    for (char32_t c2 = 0xFF01; c2 < 0xFFF0; ++c2) {
      std::u32string m = nfkc_char(c2);
      if (m != std::u32string(1, c2)) t[c2 - 0xFF01] = m;
    }
    return t;
  }();
  static const std::u32string space = U" ";
  if (c == 0x3000) return &space;
  if (c >= 0xFF01 && c < 0xFFF0 && !table[c - 0xFF01].empty()) return &table[c - 0xFF01];
  return nullptr;
}

bool removed_control(char32_t c) {  // ftfy.chardata.CONTROL_CHARS
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks and
// remove_control_chars, in that order (each is a per-character map, except CRLF), with
// remove_terminal_escapes applied between the last two as ftfy does.
std::u32string simple_fixers(const std::u32string& in) {
  std::u32string s;
  for (char32_t c : in) {
    if (const char32_t* lig = ligature(c)) { s += lig; continue; }
    s.push_back(c);
  }
  std::u32string t;
  for (char32_t c : s) {
    if (const std::u32string* w = width_map(c)) { t += *w; continue; }
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
    else if (c >= 0x201C && c <= 0x201F) c = '"';
    t.push_back(c);
  }
  std::u32string u;
  for (size_t i = 0; i < t.size(); ++i) {
    char32_t c = t[i];
    if (c == '\r' && i + 1 < t.size() && t[i + 1] == '\n') continue;
    if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
    u.push_back(c);
  }
  u = remove_terminal_escapes(u);
  u.erase(std::remove_if(u.begin(), u.end(), removed_control), u.end());
  return u;
}

std::u32string nfc(const std::u32string& s) {
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) return s;
  const std::string u = utf8_encode(s);
  utf8proc_uint8_t* mapped = nullptr;
  utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(u.data()),
                                      static_cast<utf8proc_ssize_t>(u.size()), &mapped,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (len < 0) return s;
  std::u32string r = utf8_decode(std::string(reinterpret_cast<char*>(mapped), len));
  free(mapped);
  return r;
}

// ftfy.fix_and_explain on one segment: all fixers, repeated until nothing changes.
std::u32string fix_segment(std::u32string text, bool unescape) {
  while (true) {
    const std::u32string orig = text;
    if (unescape) text = unescape_html(text);
    text = ftfy_fix_encoding(text);
    text = ftfy_fix_c1_controls(text);
    text = simple_fixers(text);
    text = nfc(text);
    if (text == orig) return text;
  }
}

bool py_isspace(char32_t c) {  // Python str.isspace(), used by str.strip()
  return (c >= 0x1C && c <= 0x1F) || is_regex_space(c);
}

bool is_cased(char32_t c) {
  if (c > 0x10FFFF) return false;
  // Other_Lowercase / Other_Uppercase characters without a case mapping of their own (ª, º and
  // the squared/circled/negative Latin capitals of U+1F130..U+1F189).
  if (c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189))
    return true;
  auto cp = static_cast<utf8proc_int32_t>(c);
  auto cat = utf8proc_category(cp);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
         utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp;
}

bool is_case_ignorable(char32_t c) {
  switch (c) {  // Word_Break MidLetter / MidNumLet / Single_Quote
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
      return true;
    default:
      break;
  }
  if (c > 0x10FFFF) return false;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
         cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

}  // namespace

bool is_regex_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::u32string ftfy_fix_text(const std::u32string& text) {
  std::u32string out;
  bool unescape = true;  // "auto", until a segment contains '<'
  size_t pos = 0;
  while (pos < text.size()) {
    size_t brk = text.find(U'\n', pos);
    brk = brk == std::u32string::npos ? text.size() : brk + 1;
    const std::u32string segment = text.substr(pos, brk - pos);
    if (segment.find(U'<') != std::u32string::npos) unescape = false;
    out += fix_segment(segment, unescape);
    pos = brk;
  }
  return out;
}

std::u32string whitespace_clean(const std::u32string& text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    if (is_regex_space(text[i])) {
      out.push_back(' ');
      while (i < text.size() && is_regex_space(text[i])) ++i;
    } else {
      out.push_back(text[i++]);
    }
  }
  size_t b = 0, e = out.size();
  while (b < e && py_isspace(out[b])) ++b;
  while (e > b && py_isspace(out[e - 1])) --e;
  return out.substr(b, e - b);
}

std::u32string python_lower(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const char32_t c = text[i];
    if (c < 0x80) {
      out.push_back((c >= 'A' && c <= 'Z') ? c + 32 : c);
    } else if (c == 0x130) {  // the one unconditional multi-character lowercase mapping
      out += U"i\u0307";
    } else if (c == 0x3A3) {  // Final_Sigma, as CPython's handle_capital_sigma
      size_t j = i;
      while (j > 0 && is_case_ignorable(text[j - 1])) --j;
      bool final_sigma = j > 0 && is_cased(text[j - 1]);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < n && is_case_ignorable(text[k])) ++k;
        final_sigma = k == n || !is_cased(text[k]);
      }
      out.push_back(final_sigma ? 0x3C2 : 0x3C3);
    } else if (c <= 0x10FFFF) {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string clip_clean(const std::u32string& text) {
  return python_lower(whitespace_clean(ftfy_fix_text(text)));
}

std::u32string basic_clean(const std::u32string& text) {
  const std::u32string composed = nfc(text);
  std::u32string out;
  out.reserve(composed.size());
  for (size_t i = 0; i < composed.size();) {
    const char32_t c = composed[i];
    if (is_regex_space(c)) {  // Replace(\s+, " ")
      out.push_back(' ');
      while (i < composed.size() && is_regex_space(composed[i])) ++i;
      continue;
    }
    ++i;
    if (c == 0x130)
      out += U"i\u0307";
    else if (c <= 0x10FFFF)
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    else
      out.push_back(c);
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    if (c < 0x80) { out.push_back(c); ++i; continue; }
    int len = 0;
    char32_t cp = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (no overlongs/surrogates)
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; lo = c == 0xE0 ? 0xA0 : 0x80; hi = c == 0xED ? 0x9F : 0xBF; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; lo = c == 0xF0 ? 0x90 : 0x80; hi = c == 0xF4 ? 0x8F : 0xBF; }
    int k = 1;
    for (; k < len && i + k < n; ++k) {
      const unsigned char d = s[i + k];
      if (k == 1 ? (d < lo || d > hi) : (d & 0xC0) != 0x80) break;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (len == 0 || k < len) {  // invalid: one U+FFFD per maximal invalid subsequence
      out.push_back(0xFFFD);
      i += std::max(1, k);
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

}  // namespace text
}  // namespace sdgen
