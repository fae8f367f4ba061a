// PNG output: 8-bit RGB through stb_image_write, plus a tEXt chunk with keyword "parameters"
// holding the generation settings in the A1111 layout, which common metadata readers show:
//   <prompt>
//   Negative prompt: <negative>
//   Steps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: <name>, Precision: fp16
// The file is written under a temporary name in the same folder and renamed into place, so a
// reader never sees a half-written image.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdgen {

// pixels: height·width·3 bytes, rows top to bottom. Throws Error(kOutput) on failure.
void write_png(const std::string& path, const uint8_t* pixels, int width, int height,
               const std::string& parameters_text);

// The PNG bytes without writing (for tests and for callers that stream).
std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height,
                                const std::string& parameters_text);

// Writes bytes to path atomically (temp file in the same folder + rename). Throws Error(kOutput).
void write_file_atomic(const std::string& path, const void* data, size_t size);

// As write_file_atomic, but never replaces a file: the complete temp file is moved to `path` only
// if nothing is there (renameat2 RENAME_NOREPLACE, or link() where the file system lacks it), so of
// two processes racing for one name exactly one gets it. Returns false (and leaves no temp file)
// when path exists; throws Error(kOutput) on any other failure.
bool write_file_exclusive(const std::string& path, const void* data, size_t size);

}  // namespace sdgen
