// Control-image preprocessing (control_images.h).
#include "cli/control_images.h"

#include "io/canny.h"

namespace sdgen::cli {

std::string control_preprocess_key(const Job& j) {
  if (j.control_preprocess == ControlPreprocess::Canny)
    return "canny:" + std::to_string(j.canny_low) + ":" + std::to_string(j.canny_high);
  return "none";
}

RgbImage preprocess_control(const Job& j, RgbImage picture) {
  if (j.control_preprocess == ControlPreprocess::Canny) return canny_edges(picture, j.canny_low, j.canny_high);
  return picture;
}

}  // namespace sdgen::cli
