// PNG output: decodes back (stb_image, an independent decoder path) to the same pixels, carries the
// "parameters" tEXt chunk with a valid CRC, and is written atomically.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <cstring>
#include <map>
#include <random>
#include <unistd.h>

#include "io/png_writer.h"
#include "sdgen/error.h"

#include "stb_image_static.h"

namespace fs = std::filesystem;
using namespace sdgen;

namespace {
uint32_t be32(const uint8_t* p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// Walks the chunk list; returns the tEXt chunks as keyword -> text; checks every CRC.
std::map<std::string, std::string> text_chunks(const std::vector<uint8_t>& png) {
  std::map<std::string, std::string> out;
  EXPECT_EQ(0, std::memcmp(png.data(), "\x89PNG\r\n\x1a\n", 8));
  size_t p = 8;
  while (p + 12 <= png.size()) {
    uint32_t len = be32(&png[p]);
    std::string type(png.begin() + p + 4, png.begin() + p + 8);
    uint32_t crc = be32(&png[p + 8 + len]);
    uLong c = crc32(0L, &png[p + 4], 4 + len);
    EXPECT_EQ(crc, (uint32_t)c) << "bad CRC in chunk " << type;
    if (type == "tEXt") {
      std::string data(png.begin() + p + 8, png.begin() + p + 8 + len);
      size_t nul = data.find('\0');
      out[data.substr(0, nul)] = data.substr(nul + 1);
    }
    if (type == "IEND") break;
    p += 12 + len;
  }
  return out;
}
}  // namespace

TEST(Png, RoundTripsPixelsAndParameters) {
  const int w = 67, h = 33;
  std::vector<uint8_t> px(w * h * 3);
  std::mt19937 rng(7);
  for (auto& b : px) b = (uint8_t)rng();
  const std::string params =
      "a red fox, 4k\nNegative prompt: blurry\nSteps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 42, "
      "Size: 64x64, Model: tiny, Precision: fp16";
  fs::path dir = fs::temp_directory_path() / ("sdgen_png_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "out.png").string();
  write_png(path, px.data(), w, h, params);

  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  int dw, dh, dc;
  unsigned char* dec = stbi_load_from_memory(bytes.data(), (int)bytes.size(), &dw, &dh, &dc, 3);
  ASSERT_NE(dec, nullptr);
  EXPECT_EQ(dw, w);
  EXPECT_EQ(dh, h);
  EXPECT_EQ(0, std::memcmp(dec, px.data(), px.size()));
  stbi_image_free(dec);
  auto chunks = text_chunks(bytes);
  ASSERT_EQ(chunks.count("parameters"), 1u);
  EXPECT_EQ(chunks["parameters"], params);

  // Nothing but the image is left in the folder (no temporary file).
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += (int)!e.path().empty();
  EXPECT_EQ(files, 1);
  fs::remove_all(dir);
}

TEST(Png, UnwritableFolderIsAnOutputError) {
  std::vector<uint8_t> px(8 * 8 * 3, 128);
  try {
    write_png("/proc/definitely/not/here.png", px.data(), 8, 8, "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutput);
    EXPECT_NE(std::string(e.what()).find("/proc/definitely/not/here.png"), std::string::npos);
  }
}
