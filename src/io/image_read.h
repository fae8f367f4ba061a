// Input images (img2img's --init-image and the like): PNG (stb_image) and JPEG (libjpeg-turbo, as
// Pillow; jpeg_read.h), turned into the 8-bit RGB picture A1111 and diffusers work on:
//   - 16-bit samples keep their high byte (as PIL reads 16-bit RGB PNGs; PIL clips 16-bit grey to
//     255 instead, which whitens such images: we keep the picture);
//   - grey is repeated into R, G and B;
//   - an alpha channel is flattened onto white as A1111 does (Image.paste onto a white background
//     with the image as its own mask: out = bg·(255−a)/255 + c·a/255, each term rounded as PIL's
//     MULDIV255); diffusers' load_image would drop alpha and show whatever colour the hidden
//     pixels hold;
//   - the EXIF orientation (JPEG APP1, PNG eXIf) is applied, as A1111's ImageOps.exif_transpose.
// Every failure is Error(kUsage) naming the file and what is wrong: missing, unreadable, not an
// image, corrupt, or larger than kMaxImageSide on a side.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdgen {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // height·width·3, rows top to bottom
  uint8_t at(int x, int y, int c) const { return pixels[((size_t)y * width + x) * 3 + c]; }
};

// 16384 on a side and 2^26 pixels (67 megapixels, 8192 × 8192) in all: a larger picture is refused
// before it is decoded, so a header cannot make the decoders allocate gigabytes.
constexpr int kMaxImageSide = 16384;
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;

// `what` names the option in messages ("--init-image").
RgbImage read_image(const std::string& path, const std::string& what);
// The same from bytes in memory (tests, fuzzing); `name` stands for the file in messages.
RgbImage decode_image(const std::vector<uint8_t>& bytes, const std::string& name, const std::string& what);

// The EXIF orientation tag (1..8) in a JPEG's APP1 segment or a PNG's eXIf chunk; 1 when absent or
// unreadable (a damaged EXIF block is ignored, as viewers do).
int exif_orientation(const std::vector<uint8_t>& bytes);
// The picture as EXIF orientation o says to show it (PIL's exif_transpose: 2 mirror, 3 rotate 180,
// 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise).
RgbImage apply_orientation(const RgbImage& in, int orientation);

}  // namespace sdgen
