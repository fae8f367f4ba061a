// The Canny edge map of a picture, as ControlNet's canny preprocessor makes it: OpenCV's
// cv::Canny (Debian's libopencv-imgproc) on the 8-bit RGB array itself, with cv2's defaults
// (3×3 Sobel aperture, L1 gradient magnitude |dx| + |dy|), as diffusers' ControlNet docs
// (`cv2.Canny(np.array(image), low, high)`) and A1111's sd-webui-controlnet canny preprocessor do.
// On a 3-channel picture OpenCV takes, per pixel, the gradient of the channel with the largest
// magnitude; no conversion to grey happens first. The single-channel edge map (255 on an edge, 0
// elsewhere) is repeated into R, G and B, as both stack it to 3 channels.
#pragma once

#include "io/image_read.h"

namespace sdgen {

// low and high are the hysteresis thresholds on the L1 gradient magnitude; OpenCV swaps them when
// low > high (so do we, through it). A negative threshold is refused (Error kUsage, one line naming
// both values): it would mark every pixel a candidate and means a mistyped option.
RgbImage canny_edges(const RgbImage& picture, int low, int high);

}  // namespace sdgen
