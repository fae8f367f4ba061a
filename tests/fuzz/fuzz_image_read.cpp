// libFuzzer target: --init-image and --mask reading (src/io/image_read.cpp): stb_image's decoders
// behind our size checks, the EXIF orientation walk (JPEG APP1, PNG eXIf), alpha flattening and the
// orientation transform, then a small resize (src/io/image_resize.cpp). Errors are sdgen::Error;
// anything else is a finding.
#include "io/image_read.h"
#include "io/image_resize.h"
#include "sdgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    const sdgen::RgbImage img = sdgen::decode_image(bytes, "in.png", "--init-image");
    if ((int64_t)img.width * img.height <= 1 << 16) (void)sdgen::fit_image(img, 16, 24, sdgen::ResizeMode::Fill);
  } catch (const sdgen::Error&) {
  }
  return 0;
}
