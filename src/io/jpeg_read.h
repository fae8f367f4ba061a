// JPEG decoding through libjpeg-turbo (what Pillow uses), to 8-bit RGB. stb_image's JPEG decoder
// writes out of bounds on crafted Huffman tables (found by tests/fuzz/fuzz_image_read.cpp), and a
// picture a user downloads is untrusted input.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdgen {

// Decodes a baseline or progressive JPEG (grey, YCbCr or RGB) to RGB rows top to bottom. Returns
// false with libjpeg's reason in *why (corrupt data, CMYK, 12-bit, a side over max_side or more
// than max_pixels pixels, ...).
bool decode_jpeg_rgb(const std::vector<uint8_t>& bytes, int max_side, int64_t max_pixels, std::vector<uint8_t>* pixels,
                     int* width, int* height, std::string* why);

}  // namespace sdgen
