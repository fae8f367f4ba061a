// img2img's and inpainting's start (pipeline.h, GenerateParams::init_image and mask), as diffusers'
// StableDiffusionImg2ImgPipeline.prepare_latents and StableDiffusionInpaintPipeline (a regular
// 4-channel model) do it:
//   1. the picture to [-1, 1]: VaeImageProcessor.preprocess, v/255 then 2v − 1 in float32;
//   2. encoded once (one picture for the whole batch) to the latent distribution's moments;
//   3. sampled with the generator: mean + std·noise, the noise the generator's first draw (one
//      picture's worth in batch mode, each image's own in per-image mode), times scaling_factor;
//   4. repeated for every image, then the scheduler's add_noise at the plan's begin step with the
//      generator's next draw (the same draw text-to-image starts from). Inpainting at strength 1
//      starts from that noise alone, × init_noise_sigma, as text-to-image.
//   5. inpainting: the masked picture's encoding draws its sample next (diffusers encodes it for
//      9-channel models and draws for every model; a regular model does not use it, so only the
//      draw is made), and the mask goes to the latent grid by nearest neighbour.
#include <algorithm>

#include "io/checkpoint.h"
#include "pipeline/pipeline.h"
#include "sdgen/error.h"
#include "vae/vae.h"
#include "vae/vae_encoder.h"

namespace sdgen {

namespace {

// diffusers' mask processor: grey (PIL's convert("L"): ITU-R 601 luma in 16-bit fixed point),
// /255, then 1 where ≥ 0.5 — the byte values 128..255.
std::vector<float> binary_mask(const RgbImage& m) {
  std::vector<float> out((size_t)m.width * m.height);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t r = m.pixels[3 * i], g = m.pixels[3 * i + 1], b = m.pixels[3 * i + 2];
    const uint32_t luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    out[i] = (float)luma / 255.0f >= 0.5f ? 1.0f : 0.0f;
  }
  return out;
}

}  // namespace

Pipeline::Start Pipeline::init_latents(const GenerateParams& p, const SamplerPlan& plan, LatentNoise& noise, int B) {
  const RgbImage& im = *p.init_image;
  if (im.width != p.width || im.height != p.height)
    throw_usage("the init image is " + std::to_string(im.width) + "x" + std::to_string(im.height) +
                ", the generation " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                ": resize it first (io/image_resize.h)");
  if (p.mask && (p.mask->width != im.width || p.mask->height != im.height))
    throw_usage("the mask is " + std::to_string(p.mask->width) + "x" + std::to_string(p.mask->height) +
                ", the init image " + std::to_string(im.width) + "x" + std::to_string(im.height));
  const VaeConfig& vc = vae_config_;  // --vae's when given
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
  Start start;
  const std::vector<float> z = noise.draw(per);
  start.x.resize(x0.size());
  const bool pure_noise = p.mask && p.strength == 1.0;  // the inpainting pipeline's is_strength_max
  for (size_t i = 0; i < start.x.size(); ++i) {
    if (pure_noise) {
      start.x[i] = z[i] * plan.init_sigma;
      continue;
    }
    // add_noise: each product rounded to float, then the sum, as torch evaluates a·x0 + b·z.
    const float a = plan.init_x0 * x0[i];
    const float b = plan.init_noise * z[i];
    start.x[i] = a + b;
  }
  if (!p.mask) return start;

  (void)noise.draw_shared(per);  // the masked picture's sample (see 5. above)
  const std::vector<float> m = binary_mask(*p.mask);
  std::vector<float> lat_mask((size_t)B * lh * lw * lc);
  for (int b = 0; b < B; ++b)
    for (int y = 0; y < lh; ++y)
      for (int x = 0; x < lw; ++x)
        for (int c = 0; c < lc; ++c)
          lat_mask[(((size_t)b * lh + y) * lw + x) * lc + c] = m[(size_t)(8 * y) * p.width + 8 * x];
  start.x0 = to_nhwc_host(x0, B, lc, lh, lw);
  start.noise = to_nhwc_host(z, B, lc, lh, lw);
  start.mask = Tensor::from_floats({B, lh, lw, lc}, lat_mask);
  return start;
}

}  // namespace sdgen
