// The OpenCV side of canny_edges (io/canny.h), built as the plugin libsdgen_canny.so: only this file
// links OpenCV, whose core library pulls in GL, X11, LAPACK and TBB, so sd-gen and its tests map
// none of them until a run asks for --control-preprocess canny (and the GPU kit carries none).
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdint>

// rgb: width·height·3 bytes, R, G, B; edges: width·height bytes, 255 on an edge, 0 elsewhere.
// Returns 0, or 1 when OpenCV threw.
extern "C" int sdgen_canny_edges(const uint8_t* rgb, int width, int height, int low, int high, uint8_t* edges) {
  try {
    // A view on the caller's bytes (cv::Mat neither owns nor copies them); the channel order is R,
    // G, B, as np.array(PIL image) hands it to cv2. OpenCV's choice between channels of equal
    // gradient magnitude depends on their order, so it must be the reference's.
    const cv::Mat in(height, width, CV_8UC3, const_cast<uint8_t*>(rgb));
    cv::Mat out(height, width, CV_8UC1, edges);
    cv::Canny(in, out, (double)low, (double)high, /*apertureSize=*/3, /*L2gradient=*/false);
    return out.data == edges ? 0 : 1;  // Canny writes into the given buffer when its size fits
  } catch (...) {
    return 1;
  }
}
