// JPEG through libjpeg-turbo (jpeg_read.h). libjpeg reports fatal errors by calling error_exit,
// which must not return: it longjmps back here. Nothing with a destructor lives in the frame
// between setjmp and a longjmp (the output buffer is the caller's, sized only after the header).
#include "io/jpeg_read.h"

#include <csetjmp>
#include <cstdio>

#include <jpeglib.h>

namespace sdgen {

namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorManager*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
// Warnings (corrupt but decodable data, as many cameras write) are not printed: the picture decodes.
void on_message(j_common_ptr) {}

// The C part: header, size check, decode into *pixels. 0 on success, else 1 (message set).
int decode(const uint8_t* data, size_t n, int max_side, int64_t max_pixels, std::vector<uint8_t>* pixels, int* width,
           int* height, ErrorManager* err) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error;
  err->pub.output_message = on_message;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  // libjpeg's own buffers (a progressive file's whole coefficient array) capped: a header may claim
  // any size, and a 16384² progressive picture would want 1.6 GB; a 170-megapixel 4:2:0 photo fits.
  cinfo.mem->max_memory_to_use = 512L << 20;
  jpeg_mem_src(&cinfo, data, (unsigned long)n);
  jpeg_read_header(&cinfo, TRUE);
  if ((int64_t)cinfo.image_width > max_side || (int64_t)cinfo.image_height > max_side ||
      (int64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
    std::snprintf(err->message, sizeof err->message,
                  "the image is %ux%u; at most %d pixels on a side and %lld in all are read", cinfo.image_width,
                  cinfo.image_height, max_side, (long long)max_pixels);
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  cinfo.out_color_space = JCS_RGB;  // grey and YCbCr convert; CMYK/YCCK make libjpeg fail (message)
  jpeg_start_decompress(&cinfo);
  *width = (int)cinfo.output_width;
  *height = (int)cinfo.output_height;
  pixels->resize((size_t)cinfo.output_width * cinfo.output_height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels->data() + (size_t)cinfo.output_scanline * cinfo.output_width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

}  // namespace

bool decode_jpeg_rgb(const std::vector<uint8_t>& bytes, int max_side, int64_t max_pixels, std::vector<uint8_t>* pixels,
                     int* width, int* height, std::string* why) {
  ErrorManager err{};
  if (decode(bytes.data(), bytes.size(), max_side, max_pixels, pixels, width, height, &err) == 0) return true;
  *why = err.message;
  return false;
}

}  // namespace sdgen
