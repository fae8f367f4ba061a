// ftfy 6.3.1's badness heuristic (ftfy.badness.BADNESS_RE), reimplemented: does text contain a
// character sequence that is much likelier to be mojibake than intended? fix_encoding only touches
// text for which this says yes, so it has to agree with ftfy exactly.
#include <utf8proc.h>

#include <algorithm>
#include <vector>

#include "text/ftfy_encoding.h"

namespace sdgen {
namespace text {
namespace {

// The character categories of ftfy.badness.MOJIBAKE_CATEGORIES, one bit each.
enum : unsigned {
  kCommon = 1u << 0, kC1 = 1u << 1, kBad = 1u << 2, kLaw = 1u << 3, kCur = 1u << 4,
  kStartP = 1u << 5, kEndP = 1u << 6, kNum = 1u << 7, kKao = 1u << 8, kUpAcc = 1u << 9,
  kLowAcc = 1u << 10, kUpCom = 1u << 11, kLowCom = 1u << 12, kBox = 1u << 13,
};

struct Range { char32_t lo, hi; unsigned bits; };

// Inclusive code point ranges of each category (ftfy lists them by character name).
const Range kRanges[] = {
    {0xA0, 0xA0, kCommon}, {0xAD, 0xAD, kCommon}, {0xB4, 0xB4, kCommon}, {0xB7, 0xB7, kCommon},
    {0x2013, 0x2015, kCommon}, {0x2019, 0x2019, kCommon}, {0x2026, 0x2026, kCommon},
    {0x80, 0x9F, kC1},
    {0xA4, 0xA4, kBad}, {0xA6, 0xA6, kBad}, {0xA8, 0xA8, kBad}, {0xAA, 0xAA, kBad}, {0xAC, 0xAC, kBad},
    {0xAF, 0xAF, kBad}, {0xB8, 0xB8, kBad}, {0xBA, 0xBA, kBad}, {0x192, 0x192, kBad},
    {0x2C6, 0x2C7, kBad}, {0x2D8, 0x2D8, kBad}, {0x2DB, 0x2DC, kBad}, {0x2020, 0x2021, kBad},
    {0x2030, 0x2030, kBad}, {0x2310, 0x2310, kBad}, {0x25CA, 0x25CA, kBad}, {0xFFFD, 0xFFFD, kBad},
    {0xA7, 0xA7, kLaw}, {0xB6, 0xB6, kLaw},
    {0xA2, 0xA3, kCur}, {0xA5, 0xA5, kCur}, {0x20A7, 0x20A7, kCur}, {0x20AC, 0x20AC, kCur},
    {0xA1, 0xA1, kStartP}, {0xA9, 0xA9, kStartP}, {0xAB, 0xAB, kStartP}, {0xBF, 0xBF, kStartP},
    {0x384, 0x385, kStartP}, {0x2018, 0x2018, kStartP}, {0x201A, 0x201A, kStartP},
    {0x201C, 0x201C, kStartP}, {0x201E, 0x201E, kStartP}, {0x2022, 0x2022, kStartP},
    {0x2039, 0x2039, kStartP}, {0xF8FF, 0xF8FF, kStartP},
    {0xAE, 0xAE, kEndP}, {0xBB, 0xBB, kEndP}, {0x2DD, 0x2DD, kEndP}, {0x201D, 0x201D, kEndP},
    {0x203A, 0x203A, kEndP}, {0x2122, 0x2122, kEndP},
    {0xB1, 0xB3, kNum}, {0xB5, 0xB5, kNum}, {0xB9, 0xB9, kNum}, {0xBC, 0xBE, kNum}, {0xD7, 0xD7, kNum},
    {0xF7, 0xF7, kNum}, {0x2044, 0x2044, kNum}, {0x2116, 0x2116, kNum}, {0x2202, 0x2202, kNum},
    {0x2206, 0x2206, kNum}, {0x220F, 0x220F, kNum}, {0x2211, 0x2211, kNum}, {0x221A, 0x221A, kNum},
    {0x221E, 0x221E, kNum}, {0x2229, 0x2229, kNum}, {0x222B, 0x222B, kNum}, {0x2248, 0x2248, kNum},
    {0x2260, 0x2261, kNum}, {0x2264, 0x2265, kNum},
    {0xB0, 0xB0, kKao}, {0xD2, 0xD6, kKao}, {0xD9, 0xDC, kKao}, {0xF2, 0xF6, kKao}, {0xF8, 0xFC, kKao},
    {0x14C, 0x14C, kKao}, {0x150, 0x150, kKao}, {0x16A, 0x16A, kKao}, {0x172, 0x172, kKao},
    {0xC0, 0xD1, kUpAcc}, {0xD8, 0xD8, kUpAcc}, {0xDC, 0xDD, kUpAcc}, {0x100, 0x100, kUpAcc},
    {0x102, 0x102, kUpAcc}, {0x104, 0x104, kUpAcc}, {0x106, 0x106, kUpAcc}, {0x10C, 0x10C, kUpAcc},
    {0x10E, 0x10E, kUpAcc}, {0x110, 0x110, kUpAcc}, {0x112, 0x112, kUpAcc}, {0x116, 0x116, kUpAcc},
    {0x118, 0x118, kUpAcc}, {0x11A, 0x11A, kUpAcc}, {0x11E, 0x11E, kUpAcc}, {0x122, 0x122, kUpAcc},
    {0x12A, 0x12A, kUpAcc}, {0x130, 0x130, kUpAcc}, {0x136, 0x136, kUpAcc}, {0x139, 0x139, kUpAcc},
    {0x13B, 0x13B, kUpAcc}, {0x13D, 0x13D, kUpAcc}, {0x141, 0x141, kUpAcc}, {0x143, 0x143, kUpAcc},
    {0x145, 0x145, kUpAcc}, {0x147, 0x147, kUpAcc}, {0x152, 0x152, kUpAcc}, {0x158, 0x158, kUpAcc},
    {0x15A, 0x15A, kUpAcc}, {0x15E, 0x15E, kUpAcc}, {0x160, 0x160, kUpAcc}, {0x162, 0x162, kUpAcc},
    {0x164, 0x164, kUpAcc}, {0x16E, 0x16E, kUpAcc}, {0x170, 0x170, kUpAcc}, {0x178, 0x179, kUpAcc},
    {0x17B, 0x17B, kUpAcc}, {0x17D, 0x17D, kUpAcc}, {0x490, 0x490, kUpAcc},
    {0xDF, 0xF1, kLowAcc}, {0xFC, 0xFC, kLowAcc}, {0x101, 0x101, kLowAcc}, {0x103, 0x103, kLowAcc},
    {0x105, 0x105, kLowAcc}, {0x107, 0x107, kLowAcc}, {0x10D, 0x10D, kLowAcc}, {0x10F, 0x10F, kLowAcc},
    {0x111, 0x111, kLowAcc}, {0x113, 0x113, kLowAcc}, {0x117, 0x117, kLowAcc}, {0x119, 0x119, kLowAcc},
    {0x11B, 0x11B, kLowAcc}, {0x11F, 0x11F, kLowAcc}, {0x123, 0x123, kLowAcc}, {0x12B, 0x12B, kLowAcc},
    {0x12F, 0x12F, kLowAcc}, {0x137, 0x137, kLowAcc}, {0x13A, 0x13A, kLowAcc}, {0x13C, 0x13C, kLowAcc},
    {0x13E, 0x13E, kLowAcc}, {0x142, 0x142, kLowAcc}, {0x153, 0x153, kLowAcc}, {0x155, 0x155, kLowAcc},
    {0x15B, 0x15B, kLowAcc}, {0x15F, 0x15F, kLowAcc}, {0x161, 0x161, kLowAcc}, {0x165, 0x165, kLowAcc},
    {0x17A, 0x17A, kLowAcc}, {0x17C, 0x17C, kLowAcc}, {0x17E, 0x17E, kLowAcc}, {0x491, 0x491, kLowAcc},
    {0xFB01, 0xFB02, kLowAcc},
    {0xDE, 0xDE, kUpCom}, {0x386, 0x386, kUpCom}, {0x388, 0x38A, kUpCom}, {0x38C, 0x38C, kUpCom},
    {0x38E, 0x38F, kUpCom}, {0x391, 0x3AB, kUpCom}, {0x401, 0x42F, kUpCom},
    {0x3AC, 0x3C9, kLowCom}, {0x430, 0x45F, kLowCom},
    {0x2502, 0x2502, kBox}, {0x250C, 0x250C, kBox}, {0x2510, 0x2510, kBox}, {0x2518, 0x2518, kBox},
    {0x251C, 0x251C, kBox}, {0x2524, 0x2524, kBox}, {0x252C, 0x252C, kBox}, {0x253C, 0x253C, kBox},
    {0x2550, 0x256C, kBox}, {0x2580, 0x2580, kBox}, {0x2584, 0x2584, kBox}, {0x2588, 0x2588, kBox},
    {0x258C, 0x258C, kBox}, {0x2590, 0x2593, kBox},
};

unsigned categories(char32_t c) {
  if (c < 0x80) return 0;
  unsigned bits = 0;
  for (const Range& r : kRanges)
    if (c >= r.lo && c <= r.hi) bits |= r.bits;
  return bits;
}

// Python `re` \s and \w on str (what BADNESS_RE, a `re` pattern, uses).
bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}
bool py_word(char32_t c) {
  if (c == '_') return true;
  if (c > 0x10FFFF) return false;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

constexpr char32_t kNone = 0xFFFFFFFF;  // "past the end" for the pattern checks below

bool in(char32_t c, std::initializer_list<char32_t> set) {
  return std::find(set.begin(), set.end(), c) != set.end();
}

// One position of BADNESS_RE: does any of its alternatives match starting at s[i]?
// cats[k] = categories(s[k]), computed once per string.
bool bad_at(const std::u32string& s, const std::vector<unsigned>& cats, size_t i) {
  const size_t n = s.size();
  auto at = [&](size_t k) { return k < n ? s[k] : kNone; };
  auto has = [&](size_t k, unsigned mask) { return k < n && (cats[k] & mask) != 0; };
  auto lower = [&](size_t k) { return k < n && s[k] >= 'a' && s[k] <= 'z'; };
  auto alpha = [&](size_t k) { return k < n && ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'z'); };
  const unsigned kAccBoxPunctEtc = kLowAcc | kUpAcc | kBox | kStartP | kEndP | kCur | kNum | kLaw;
  const char32_t c = s[i];
  if (has(i, kC1)) return true;
  if (has(i, kBad | kAccBoxPunctEtc) && has(i + 1, kBad)) return true;
  if (alpha(i) && has(i + 1, kLowCom | kUpCom) && has(i + 2, kBad)) return true;
  if (has(i, kBad) && has(i + 1, kAccBoxPunctEtc)) return true;
  if (has(i, kLowAcc | kLowCom | kBox | kEndP | kCur | kNum) && has(i + 1, kUpAcc)) return true;
  if (has(i, kBox | kEndP | kCur | kNum) && has(i + 1, kLowAcc)) return true;
  if (has(i, kLowAcc | kBox | kEndP) && has(i + 1, kCur)) return true;
  if (py_space(c) && has(i + 1, kUpAcc) && has(i + 2, kCur)) return true;
  if (has(i, kUpAcc | kBox) && has(i + 1, kNum | kLaw)) return true;
  if (has(i, kLowAcc | kUpAcc | kBox | kCur | kEndP) && has(i + 1, kStartP) && has(i + 2, kNum)) return true;
  if (has(i, kLowAcc | kUpAcc | kCur | kNum | kBox | kLaw) && has(i + 1, kEndP) && has(i + 2, kStartP)) return true;
  if (has(i, kCur | kNum | kBox) && has(i + 1, kStartP)) return true;
  if (lower(i) && has(i + 1, kUpAcc) && has(i + 2, kStartP | kCur)) return true;
  if (has(i, kBox) && has(i + 1, kKao)) return true;
  if (has(i, kLowAcc | kUpAcc | kCur | kNum | kStartP | kEndP | kLaw) && has(i + 1, kBox)) return true;
  if (has(i, kBox) && has(i + 1, kEndP)) return true;
  if (has(i, kLowAcc | kUpAcc) && has(i + 1, kStartP | kEndP) && i + 2 < n && py_word(s[i + 2])) return true;
  if ((c == 0x152 || c == 0x153) && i + 1 < n && !alpha(i + 1)) return true;
  if (has(i, kUpAcc) && at(i + 1) == 0xB0) return true;
  if (in(c, {0xC2, 0xC3, 0xCE, 0xD0}) &&
      (in(at(i + 1), {0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0, 0xAD, 0xAE, 0xA9,
                      0xB0, 0xB7, 0xBB, 0x2013, 0x2014, 0xB4}) ||
       has(i + 1, kStartP | kEndP)))
    return true;
  if (c == 0xD7 && in(at(i + 1), {0xB2, 0xB3})) return true;
  auto arabic_tail = [&](size_t k) {
    return has(k, kCommon | kCur | kBad | kNum | kStartP) || in(at(k), {0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB});
  };
  if (in(c, {0xD8, 0xD9}) && arabic_tail(i + 1) && in(at(i + 2), {0xD8, 0xD9}) && arabic_tail(i + 3)) return true;
  if (c == 0xE0 && in(at(i + 1), {0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE})) return true;
  if (c == 0x221A && in(at(i + 1), {0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264, 0x2265, 0xA5, 0xB5, 0xF8}))
    return true;
  if (c == 0x2248 && in(at(i + 1), {0xB0, 0xA2})) return true;
  if (c == 0x201A && at(i + 1) == 0xC4 &&
      in(at(i + 2), {0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB, 0x2020, 0xB0, 0xA2, 0x3C0}))
    return true;
  if (c == 0x201A && in(at(i + 1), {0xE2, 0xF3}) && in(at(i + 2), {0xE0, 0xE4, 0xB0, 0xEA})) return true;
  if (c == 0x432 && at(i + 1) == 0x402) return true;
  const std::initializer_list<char32_t> kCyr = {0x412, 0x413, 0x420, 0x421};
  if (in(c, kCyr) && (has(i + 1, kC1 | kBad | kStartP | kEndP | kCur) || in(at(i + 1), {0xB0, 0xB5})) &&
      in(at(i + 2), kCyr))
    return true;
  if (c == 0x413 && at(i + 1) == 0x45E && at(i + 2) == 0x412 && at(i + 3) == 0x402 && at(i + 4) == 0x412 &&
      i + 5 < n && s[i + 5] != '\n' && (alpha(i + 6) || at(i + 6) == ' '))
    return true;
  if (c == 0xC3 && in(at(i + 1), {0xA0, 0xA1})) return true;
  if (lower(i)) {
    size_t k = i + 1;
    if (in(at(k), {0xC3, 0xC2}) && at(k + 1) == ' ') return true;
    if (k < n && py_space(s[k]) && in(at(k + 1), {0xC3, 0xC2}) && at(k + 2) == ' ') return true;
  }
  if (i == 0 && in(c, {0xC3, 0xC2}) && at(1) == ' ') return true;
  if ((lower(i) || in(c, {'.', ',', '?', '!'}) || has(i, kEndP)) && at(i + 1) == 0xC2 &&
      (at(i + 2) == ' ' || has(i + 2, kStartP | kEndP)))
    return true;
  if (c == 0x3B2 && at(i + 1) == 0x20AC && in(at(i + 2), {0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0})) return true;
  const std::initializer_list<char32_t> kGreek = {0x392, 0x393, 0x39E, 0x39F};
  if (in(c, kGreek) && (has(i + 1, kC1 | kBad | kStartP | kEndP | kCur) || at(i + 1) == 0xB0) &&
      in(at(i + 2), kGreek))
    return true;
  if (c == 0x101 && at(i + 1) == 0x20AC) return true;
  return false;
}

}  // namespace

bool ftfy_is_bad(const std::u32string& s) {
  std::vector<unsigned> cats(s.size());
  for (size_t i = 0; i < s.size(); ++i) cats[i] = categories(s[i]);
  for (size_t i = 0; i < s.size(); ++i)
    if (bad_at(s, cats, i)) return true;
  return false;
}

}  // namespace text
}  // namespace sdgen
