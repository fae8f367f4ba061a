// img2img's start (pipeline.h, GenerateParams::init_image), as diffusers'
// StableDiffusionImg2ImgPipeline.prepare_latents does it:
//   1. the picture to [-1, 1]: VaeImageProcessor.preprocess, v/255 then 2v − 1 in float32;
//   2. encoded once (one picture for the whole batch) to the latent distribution's moments;
//   3. sampled with the generator: mean + std·noise, the noise the generator's first draw (one
//      picture's worth in batch mode, each image's own in per-image mode), times scaling_factor;
//   4. repeated for every image, then the scheduler's add_noise at the plan's begin step with the
//      generator's next draw (the same draw text-to-image starts from).
#include <algorithm>

#include "io/checkpoint.h"
#include "pipeline/pipeline.h"
#include "sdgen/error.h"
#include "vae/vae_encoder.h"

namespace sdgen {

std::vector<float> Pipeline::init_latents(const GenerateParams& p, const SamplerPlan& plan, LatentNoise& noise,
                                          int B) {
  const RgbImage& im = *p.init_image;
  if (im.width != p.width || im.height != p.height)
    throw_usage("the init image is " + std::to_string(im.width) + "x" + std::to_string(im.height) +
                ", the generation " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                ": resize it first (io/image_resize.h)");
  const VaeConfig& vc = vae_->config();  // --vae's when given
  const int lc = vc.latent_channels, lh = p.height / 8, lw = p.width / 8;
  const size_t per = (size_t)lc * lh * lw;

  std::vector<float> pixels(im.pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    const float v = (float)im.pixels[i] / 255.0f;
    pixels[i] = 2.0f * v - 1.0f;
  }
  if (!vae_encoder_) {
    const Checkpoint& weights = vae_weights_ ? *vae_weights_ : *checkpoint_;
    vae_encoder_ = std::make_unique<VaeEncoder>(weights, vc, precision_, device_);
    if (log_) log_("loaded the VAE encoder for the init image");
  }
  const Tensor moments = vae_encoder_->moments(Tensor::from_floats({1, im.height, im.width, 3}, pixels));

  // One sample per generator: one in batch mode, shared by the images; one per image otherwise.
  const std::vector<float> sample_noise = noise.draw_shared(per);
  const int samples = (int)(sample_noise.size() / per);
  std::vector<float> x0((size_t)B * per);
  for (int s = 0; s < samples; ++s) {
    const std::vector<float> one(sample_noise.begin() + (ptrdiff_t)(s * per), sample_noise.begin() + (ptrdiff_t)((s + 1) * per));
    std::vector<float> lat = to_nchw(vae_latent_sample(moments, to_nhwc_host(one, 1, lc, lh, lw)));
    for (float& v : lat) v = vc.scaling_factor * v;
    if (samples == 1) {
      for (int b = 0; b < B; ++b) std::copy(lat.begin(), lat.end(), x0.begin() + (ptrdiff_t)(b * per));
    } else {
      std::copy(lat.begin(), lat.end(), x0.begin() + (ptrdiff_t)(s * per));
    }
  }
  // add_noise: each product rounded to float, then the sum, as torch evaluates a·x0 + b·z.
  const std::vector<float> z = noise.draw(per);
  std::vector<float> x(x0.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float a = plan.init_x0 * x0[i];
    const float b = plan.init_noise * z[i];
    x[i] = a + b;
  }
  return x;
}

}  // namespace sdgen
