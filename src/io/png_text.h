// Reading a PNG's text metadata: the value of one keyword ("parameters", where A1111 and sd-gen keep
// the generation settings) from its tEXt, zTXt or iTXt chunk.
//   - tEXt and zTXt hold Latin-1 by the PNG spec (Pillow writes them so); sd-gen writes UTF-8 into
//     tEXt. Text that is valid UTF-8 is taken as it is, any other is read as Latin-1 and turned
//     into UTF-8.
//   - iTXt holds UTF-8 (Pillow writes one when the text is not Latin-1), compressed or not.
// Chunks are checked (CRC, lengths) up to the one found; compressed text is inflated up to
// kMaxPngText bytes. Every failure is Error(kUsage) naming the file: missing, not a PNG, cut
// short, corrupt, or without that keyword.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdgen {

constexpr size_t kMaxPngText = 1 << 20;  // 1 MiB of text: prompts are a few KiB

// `what` names the option in messages ("--from-png").
std::string read_png_text(const std::string& path, const std::string& keyword, const std::string& what);
// The same from bytes in memory (tests); `name` stands for the file in messages.
std::string png_text_from_bytes(const std::vector<uint8_t>& bytes, const std::string& keyword,
                                const std::string& name, const std::string& what);

}  // namespace sdgen
