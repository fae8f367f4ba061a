// The hires fix's option values (pipeline/hires.h): upscaler names and A1111's hires side. Apart from
// hires.cpp, which runs the passes, so that the settings table links without the pipeline.
#include "pipeline/hires.h"

namespace sdgen {

const char* hires_upscaler_name(HiresUpscaler u) {
  switch (u) {
    case HiresUpscaler::Latent: return "latent";
    case HiresUpscaler::LatentNearest: return "latent-nearest";
    case HiresUpscaler::LatentBicubic: return "latent-bicubic";
    case HiresUpscaler::Lanczos: return "lanczos";
  }
  return "?";
}

const char* hires_upscaler_a1111(HiresUpscaler u) {
  switch (u) {
    case HiresUpscaler::Latent: return "Latent";
    case HiresUpscaler::LatentNearest: return "Latent (nearest)";
    case HiresUpscaler::LatentBicubic: return "Latent (bicubic)";
    case HiresUpscaler::Lanczos: return "Lanczos";
  }
  return "?";
}

bool is_latent_upscaler(HiresUpscaler u) { return u != HiresUpscaler::Lanczos; }

LatentUpscaleMode latent_upscale_mode(HiresUpscaler u) {
  if (u == HiresUpscaler::LatentNearest) return LatentUpscaleMode::Nearest;
  if (u == HiresUpscaler::LatentBicubic) return LatentUpscaleMode::Bicubic;
  return LatentUpscaleMode::Bilinear;
}

int hires_side(int side, double scale) { return (int)((double)side * scale); }

}  // namespace sdgen
