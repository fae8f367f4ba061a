#include "io/png_writer.h"

#include <zlib.h>

#include <cstdio>
#include <cstdlib>

#include "sdgen/error.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace sdgen {

namespace {

void put_u32_be(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back((uint8_t)(v >> 24));
  out.push_back((uint8_t)(v >> 16));
  out.push_back((uint8_t)(v >> 8));
  out.push_back((uint8_t)v);
}

// A tEXt chunk: keyword, NUL, text (Latin-1 by the PNG spec; A1111 and its readers put UTF-8 in it
// and read it back as UTF-8, so we do the same).
std::vector<uint8_t> text_chunk(const std::string& keyword, const std::string& text) {
  std::vector<uint8_t> data(keyword.begin(), keyword.end());
  data.push_back(0);
  data.insert(data.end(), text.begin(), text.end());
  std::vector<uint8_t> chunk;
  put_u32_be(chunk, (uint32_t)data.size());
  const char type[4] = {'t', 'E', 'X', 't'};
  chunk.insert(chunk.end(), type, type + 4);
  chunk.insert(chunk.end(), data.begin(), data.end());
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(type), 4);
  crc = crc32(crc, data.data(), (uInt)data.size());
  put_u32_be(chunk, (uint32_t)crc);
  return chunk;
}

}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height,
                                const std::string& parameters_text) {
  int len = 0;
  unsigned char* png = stbi_write_png_to_mem(pixels, width * 3, width, height, 3, &len);
  if (!png || len < 33) throw_output("PNG encoding failed");
  // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 crc = 25): insert after it.
  std::vector<uint8_t> out(png, png + 33);
  if (!parameters_text.empty()) {
    std::vector<uint8_t> chunk = text_chunk("parameters", parameters_text);
    out.insert(out.end(), chunk.begin(), chunk.end());
  }
  out.insert(out.end(), png + 33, png + len);
  STBIW_FREE(png);
  return out;
}

void write_png(const std::string& path, const uint8_t* pixels, int width, int height,
               const std::string& parameters_text) {
  std::vector<uint8_t> bytes = encode_png(pixels, width, height, parameters_text);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace sdgen
