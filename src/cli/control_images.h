// The control images of a job as its ControlNets read them: --control-preprocess applied (canny: the
// picture's Canny edges, io/canny.h); the pipeline resizes them to the image's size.
#pragma once
#include <string>

#include "cli/job.h"
#include "io/image_read.h"

namespace sdgen::cli {

// What the preprocessing makes of a picture, for caching: "none", or "canny:LOW:HIGH".
std::string control_preprocess_key(const Job& j);
RgbImage preprocess_control(const Job& j, RgbImage picture);

}  // namespace sdgen::cli
