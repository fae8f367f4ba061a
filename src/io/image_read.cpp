// Input images (image_read.h): stb_image decodes, then alpha, grey and EXIF orientation as A1111.
#include "io/image_read.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "io/jpeg_read.h"
#include "sdgen/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
// stb_image for PNG only: its JPEG decoder writes out of bounds on crafted files (jpeg_read.h), and
// its other decoders (BMP, GIF, TGA, PSD, PNM, HDR) are not what people start a picture from.
#define STBI_ONLY_PNG
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace sdgen {

namespace {

// Over 1 GiB of file is not a picture people start from; refused before it is read into memory.
constexpr uint64_t kMaxFileBytes = 1ull << 30;

uint32_t read_u32(const uint8_t* p, bool le) {
  return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
            : (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}
uint16_t read_u16(const uint8_t* p, bool le) { return le ? (uint16_t)(p[0] | p[1] << 8) : (uint16_t)(p[1] | p[0] << 8); }

// The orientation tag of IFD0 in a TIFF block (EXIF's layout); 1 when absent or out of bounds.
int tiff_orientation(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  bool le;
  if (t[0] == 'I' && t[1] == 'I') le = true;
  else if (t[0] == 'M' && t[1] == 'M') le = false;
  else return 1;
  if (read_u16(t + 2, le) != 42) return 1;
  const uint32_t ifd = read_u32(t + 4, le);
  if (ifd > n - 2 || n < 2) return 1;
  const uint32_t count = read_u16(t + ifd, le);
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t e = (uint64_t)ifd + 2 + 12ull * i;
    if (e + 12 > n) return 1;
    if (read_u16(t + e, le) != 0x0112) continue;
    if (read_u16(t + e + 2, le) != 3 || read_u32(t + e + 4, le) != 1) return 1;  // SHORT, one value
    const int o = read_u16(t + e + 8, le);
    return o >= 1 && o <= 8 ? o : 1;
  }
  return 1;
}

int jpeg_orientation(const std::vector<uint8_t>& b) {
  size_t i = 2;
  while (i + 4 <= b.size() && b[i] == 0xFF) {
    const uint8_t marker = b[i + 1];
    if (marker == 0xDA || marker == 0xD9) break;  // image data: no more metadata segments
    const size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
    if (len < 2 || i + 2 + len > b.size()) break;
    const uint8_t* seg = b.data() + i + 4;
    const size_t seg_n = len - 2;
    if (marker == 0xE1 && seg_n >= 6 && std::memcmp(seg, "Exif\0\0", 6) == 0) return tiff_orientation(seg + 6, seg_n - 6);
    i += 2 + len;
  }
  return 1;
}

int png_orientation(const std::vector<uint8_t>& b) {
  size_t i = 8;
  while (i + 12 <= b.size()) {
    const uint32_t len = read_u32(b.data() + i, false);
    if (len > b.size() - i - 12) break;
    const uint8_t* type = b.data() + i + 4;
    if (std::memcmp(type, "eXIf", 4) == 0) return tiff_orientation(b.data() + i + 8, len);
    if (std::memcmp(type, "IEND", 4) == 0) break;
    i += 12 + (size_t)len;
  }
  return 1;
}

// PIL's (a·b + 128) · 257 >> 16: a·b/255 rounded, exact for 8-bit operands.
inline uint8_t muldiv255(unsigned a, unsigned b) {
  const unsigned t = a * b + 128;
  return (uint8_t)(((t >> 8) + t) >> 8);
}

// The PNG without its empty IDAT chunks (legal, and carrying nothing): stb_image copies zero bytes
// from a null buffer for a leading one, which is undefined behaviour. The bytes as they are when
// there is none.
std::vector<uint8_t> without_empty_idat(const std::vector<uint8_t>& b) {
  std::vector<uint8_t> out;
  size_t i = 8, copied = 0;
  while (i + 12 <= b.size()) {
    const uint32_t len = read_u32(b.data() + i, false);
    if (len > b.size() - i - 12) break;
    if (len == 0 && std::memcmp(b.data() + i + 4, "IDAT", 4) == 0) {
      if (out.empty()) out.reserve(b.size());
      out.insert(out.end(), b.begin() + (ptrdiff_t)copied, b.begin() + (ptrdiff_t)i);
      copied = i + 12;
    }
    i += 12 + (size_t)len;
  }
  if (copied == 0) return b;
  out.insert(out.end(), b.begin() + (ptrdiff_t)copied, b.end());
  return out;
}

// Whether every PNG chunk whose length and type are in the file fits in it, CRC included (stb_image
// would grow its buffer to a claimed IDAT length, up to 2 GB, before finding the data short; a last
// chunk whose 8-byte header ends the file is enough).
bool png_chunks_fit(const std::vector<uint8_t>& b) {
  size_t i = 8;
  while (i + 8 <= b.size()) {
    const uint32_t len = read_u32(b.data() + i, false);
    if (b.size() - i < 12 || len > b.size() - i - 12) return false;
    if (std::memcmp(b.data() + i + 4, "IEND", 4) == 0) return true;
    i += 12 + (size_t)len;
  }
  return true;  // cut short: stb_image reports it
}

// The size a PNG's IHDR or a JPEG's frame header declares (0 × 0 when neither is found), for the
// message about a picture too large to decode: stb refuses those without saying its size.
std::pair<uint32_t, uint32_t> declared_size(const std::vector<uint8_t>& b) {
  if (b.size() >= 24 && b[0] == 0x89 && std::memcmp(b.data() + 12, "IHDR", 4) == 0)
    return {read_u32(b.data() + 16, false), read_u32(b.data() + 20, false)};
  if (b.size() >= 4 && b[0] == 0xFF && b[1] == 0xD8) {
    size_t i = 2;
    while (i + 9 <= b.size() && b[i] == 0xFF) {
      const uint8_t m = b[i + 1];
      const size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
        return {(uint32_t)read_u16(b.data() + i + 7, false), (uint32_t)read_u16(b.data() + i + 5, false)};
      if (len < 2) break;
      i += 2 + len;
    }
  }
  return {0, 0};
}

}  // namespace

int exif_orientation(const std::vector<uint8_t>& b) {
  if (b.size() >= 4 && b[0] == 0xFF && b[1] == 0xD8) return jpeg_orientation(b);
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() >= 8 && std::memcmp(b.data(), kPng, 8) == 0) return png_orientation(b);
  return 1;
}

RgbImage apply_orientation(const RgbImage& in, int o) {
  if (o <= 1 || o > 8) return in;
  const int W = in.width, H = in.height;
  const bool swap = o >= 5;  // the four transforms that exchange width and height
  RgbImage out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.pixels.resize(in.pixels.size());
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (o) {
        case 2: sx = W - 1 - x; break;
        case 3: sx = W - 1 - x, sy = H - 1 - y; break;
        case 4: sy = H - 1 - y; break;
        case 5: sx = y, sy = x; break;
        case 6: sx = y, sy = H - 1 - x; break;
        case 7: sx = W - 1 - y, sy = H - 1 - x; break;
        case 8: sx = W - 1 - y, sy = x; break;
      }
      std::memcpy(&out.pixels[((size_t)y * out.width + x) * 3], &in.pixels[((size_t)sy * W + sx) * 3], 3);
    }
  return out;
}

RgbImage decode_image(const std::vector<uint8_t>& bytes, const std::string& name, const std::string& what) {
  const std::string where = what + " " + name + ": ";
  if (bytes.empty()) throw_usage(where + "the file is empty");
  if (bytes.size() > kMaxFileBytes) throw_usage(where + "the file is over 1 GiB; not read");
  auto too_large = [&](uint64_t w, uint64_t h) {
    return w > (uint64_t)kMaxImageSide || h > (uint64_t)kMaxImageSide || w * h > (uint64_t)kMaxImagePixels;
  };
  auto refuse_size = [&](uint64_t w, uint64_t h) {
    throw_usage(where + "the image is " + std::to_string(w) + "x" + std::to_string(h) + "; at most " +
                std::to_string(kMaxImageSide) + " pixels on a side and " + std::to_string(kMaxImagePixels) +
                " in all are read");
  };
  const auto [dw, dh] = declared_size(bytes);
  if (too_large(dw, dh)) refuse_size(dw, dh);
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    RgbImage img;
    std::string why;
    if (!decode_jpeg_rgb(bytes, kMaxImageSide, kMaxImagePixels, &img.pixels, &img.width, &img.height, &why))
      throw_usage(where + "the JPEG cannot be read: " + why);
    return apply_orientation(img, exif_orientation(bytes));
  }
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes.data(), (int)bytes.size(), &w, &h, &comp))
    throw_usage(where + "not an image sd-gen can read (PNG or JPEG)");
  if (w < 1 || h < 1) throw_usage(where + "the image is corrupt: it declares no pixels");
  if (too_large((uint64_t)w, (uint64_t)h)) refuse_size((uint64_t)w, (uint64_t)h);
  if (!png_chunks_fit(bytes)) throw_usage(where + "the image is corrupt: a chunk runs past the end of the file");
  const std::vector<uint8_t> png = without_empty_idat(bytes);
  const bool alpha = comp == 2 || comp == 4;
  const int want = alpha ? 4 : 3;
  int w2 = 0, h2 = 0, c2 = 0;
  stbi_uc* data = stbi_load_from_memory(png.data(), (int)png.size(), &w2, &h2, &c2, want);
  if (!data) throw_usage(where + "the image is corrupt: " + stbi_failure_reason());
  RgbImage img;
  img.width = w2;
  img.height = h2;
  img.pixels.resize((size_t)w2 * h2 * 3);
  const size_t n = (size_t)w2 * h2;
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) {
      const uint8_t v = data[i * want + c];
      if (!alpha) {
        img.pixels[i * 3 + c] = v;
      } else {
        const uint8_t a = data[i * want + 3];
        img.pixels[i * 3 + c] = (uint8_t)(muldiv255(255, 255u - a) + muldiv255(v, a));
      }
    }
  stbi_image_free(data);
  return apply_orientation(img, exif_orientation(bytes));
}

RgbImage read_image(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw_usage(what + " " + path + ": not a regular file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw_usage(what + " " + path + ": cannot open the file (" + std::strerror(errno) + ")");
  const std::streamoff size = f.tellg();
  if (size < 0) throw_usage(what + " " + path + ": cannot read the file");
  if ((uint64_t)size > kMaxFileBytes) throw_usage(what + " " + path + ": the file is over 1 GiB; not read");
  std::vector<uint8_t> bytes((size_t)size);
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size))
    throw_usage(what + " " + path + ": cannot read the file");
  return decode_image(bytes, path, what);
}

}  // namespace sdgen
