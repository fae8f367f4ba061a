// PNG text chunks (png_text.h): the chunk walk, the three text chunk forms, Latin-1 → UTF-8.
#include "io/png_text.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "sdgen/error.h"

namespace sdgen {

namespace {

uint32_t be32(const uint8_t* p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = (uint8_t)s[i];
    const int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0 || i + n >= s.size() + (n == 0)) return false;
    for (int k = 1; k <= n; ++k)
      if (((uint8_t)s[i + k] >> 6) != 2) return false;
    i += n + 1;
  }
  return true;
}

std::string latin1_to_utf8(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const uint8_t c = (uint8_t)ch;
    if (c < 0x80) {
      out += ch;
    } else {
      out += (char)(0xC0 | c >> 6);
      out += (char)(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// Our tEXt is UTF-8, the spec's (and Pillow's) Latin-1.
std::string as_utf8(const std::string& t) { return valid_utf8(t) ? t : latin1_to_utf8(t); }

// zlib data inflated, at most kMaxPngText bytes; false when corrupt or larger.
bool inflate_text(const uint8_t* data, size_t size, std::string* out) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return false;
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = (uInt)size;
  std::string buf(kMaxPngText + 1, '\0');
  z.next_out = reinterpret_cast<Bytef*>(buf.data());
  z.avail_out = (uInt)buf.size();
  const int rc = inflate(&z, Z_FINISH);
  const size_t got = buf.size() - z.avail_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END || got > kMaxPngText) return false;
  *out = buf.substr(0, got);
  return true;
}

// The text of one chunk whose data starts with `keyword` NUL; false (out untouched) for another
// keyword. Throws for a chunk of that keyword that cannot be read.
bool chunk_text(const std::string& type, const uint8_t* d, size_t n, const std::string& keyword, std::string* out,
                const std::string& at) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(d, 0, n));
  if (!nul || std::string(reinterpret_cast<const char*>(d), nul - d) != keyword) return false;
  const uint8_t* p = nul + 1;
  const size_t left = n - (size_t)(p - d);
  auto bad = [&](const char* why) { throw_usage(at + type + " chunk \"" + keyword + "\": " + why); };
  if (type == "tEXt") {
    const std::string t(reinterpret_cast<const char*>(p), left);
    *out = as_utf8(t);
  } else if (type == "zTXt") {
    std::string t;
    if (left < 1 || p[0] != 0 || !inflate_text(p + 1, left - 1, &t)) bad("corrupt or too large compressed text");
    *out = as_utf8(t);
  } else {  // iTXt: compression flag, method, language tag NUL, translated keyword NUL, text
    if (left < 2) bad("cut short");
    const bool compressed = p[0] == 1;
    const uint8_t* q = p + 2;
    for (int skip = 0; skip < 2; ++skip) {
      const uint8_t* z = static_cast<const uint8_t*>(std::memchr(q, 0, (size_t)(d + n - q)));
      if (!z) bad("cut short");
      q = z + 1;
    }
    const size_t rest = (size_t)(d + n - q);
    if (!compressed) *out = std::string(reinterpret_cast<const char*>(q), rest);
    else if (p[1] != 0 || !inflate_text(q, rest, out)) bad("corrupt or too large compressed text");
    if (!valid_utf8(*out)) bad("text is not UTF-8");
  }
  return true;
}

}  // namespace

std::string png_text_from_bytes(const std::vector<uint8_t>& b, const std::string& keyword, const std::string& name,
                                const std::string& what) {
  const std::string at = what + " " + name + ": ";
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), sig, 8) != 0) throw_usage(at + "not a PNG file");
  for (size_t pos = 8;;) {
    if (b.size() - pos < 12) throw_usage(at + "cut short (no IEND chunk)");
    const uint32_t len = be32(&b[pos]);
    if (len > b.size() - pos - 12) throw_usage(at + "cut short (a chunk runs past the end)");
    const std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
    const uint8_t* data = &b[pos + 8];
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, &b[pos + 4], 4 + len);
    if ((uint32_t)crc != be32(data + len)) throw_usage(at + "corrupt (CRC of the " + type + " chunk)");
    if (type == "IEND") break;
    std::string text;
    if ((type == "tEXt" || type == "zTXt" || type == "iTXt") && chunk_text(type, data, len, keyword, &text, at))
      return text;
    pos += 12 + (size_t)len;
  }
  throw_usage(at + "no \"" + keyword + "\" text in this PNG");
}

std::string read_png_text(const std::string& path, const std::string& keyword, const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_usage(what + " " + path + ": cannot open: " + std::strerror(errno));
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  // Metadata comes with a picture; a picture of kMaxImageSide² RGBA is under 1.1 GB compressed.
  if (size < 0 || size > (std::streamoff)1 << 30) throw_usage(what + " " + path + ": not a readable file under 1 GiB");
  f.seekg(0);
  std::vector<uint8_t> bytes((size_t)size);
  if (!f.read(reinterpret_cast<char*>(bytes.data()), size)) throw_usage(what + " " + path + ": cannot read");
  return png_text_from_bytes(bytes, keyword, path, what);
}

}  // namespace sdgen
