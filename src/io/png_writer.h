// PNG output: 8-bit RGB through stb_image_write, plus a tEXt chunk with keyword "parameters"
// holding the generation settings in the A1111 layout, which common metadata readers show:
//   <prompt>
//   Negative prompt: <negative>
//   Steps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: <name>, Precision: fp16
// The file is written under a temporary name in the same folder, created exclusively (never through
// a link planted there), and renamed into place, so a reader never sees a half-written image.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/file_write.h"

namespace sdgen {

// pixels: height·width·3 bytes, rows top to bottom. Throws Error(kOutput) on failure.
void write_png(const std::string& path, const uint8_t* pixels, int width, int height,
               const std::string& parameters_text);

// The PNG bytes without writing (for tests and for callers that stream).
std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height,
                                const std::string& parameters_text);

}  // namespace sdgen
