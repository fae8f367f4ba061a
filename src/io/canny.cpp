#include "io/canny.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <string>

#include "sdgen/error.h"

namespace sdgen {

RgbImage canny_edges(const RgbImage& picture, int low, int high) {
  if (low < 0 || high < 0)
    throw_usage("canny thresholds must not be negative (low " + std::to_string(low) + ", high " +
                std::to_string(high) + ")");
  SDGEN_CHECK(picture.width > 0 && picture.height > 0 &&
                  picture.pixels.size() == (size_t)picture.width * picture.height * 3,
              "canny_edges: a picture of width·height·3 bytes");
  // A view on our bytes (cv::Mat does not own or copy them); the channel order is R, G, B, as
  // np.array(PIL image) hands it to cv2. OpenCV's choice between channels of equal gradient
  // magnitude depends on their order, so it must be the same as the reference's.
  const cv::Mat rgb(picture.height, picture.width, CV_8UC3, const_cast<uint8_t*>(picture.pixels.data()));
  cv::Mat edges;
  cv::Canny(rgb, edges, (double)low, (double)high, /*apertureSize=*/3, /*L2gradient=*/false);

  RgbImage out;
  out.width = picture.width;
  out.height = picture.height;
  out.pixels.resize(picture.pixels.size());
  for (int y = 0; y < out.height; ++y) {
    const uint8_t* row = edges.ptr<uint8_t>(y);
    for (int x = 0; x < out.width; ++x) {
      uint8_t* px = &out.pixels[((size_t)y * out.width + x) * 3];
      px[0] = px[1] = px[2] = row[x];
    }
  }
  return out;
}

}  // namespace sdgen
