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
// A 9-channel inpainting model (sd-v1-5-inpainting) differs in three ways, all diffusers': the
// picture is encoded (and its sample drawn) only when strength < 1, where add_noise needs it; the
// masked picture (the picture × (mask < 0.5): repainted pixels 0, mid-grey) is encoded and sampled
// for real; and the UNet reads [scaled latents, latent mask, masked-picture latents] every step
// (Start::cond), with no blending.
//   6. --inpaint-fill latent-noise: the generator's next draw (after the masked picture's sample,
//      before any sampler step's) replaces the picture's latents where that grid mask is 1, and the
//      start is noised again there (inpaint_area.h, fill_with_latent_noise).
#include <algorithm>

#include "io/checkpoint.h"
#include "pipeline/inpaint_area.h"
#include "pipeline/pipeline.h"
#include "sdgen/error.h"
#include "vae/vae.h"
#include "vae/taesd.h"
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

// The 9-channel UNet's conditioning, NHWC [B, h, w, 1 + C] host fp32: the mask on the latent grid
// (nearest: diffusers' F.interpolate default) then the masked picture's latents, as diffusers'
// torch.cat([latents, mask, masked_image_latents], dim=1) puts them after the latents.
Tensor inpaint_condition(const std::vector<float>& m, const std::vector<float>& masked_latents, int width, int B,
                         int lc, int lh, int lw) {
  const int cc = 1 + lc;
  std::vector<float> cond((size_t)B * lh * lw * cc);
  for (int b = 0; b < B; ++b)
    for (int y = 0; y < lh; ++y)
      for (int x = 0; x < lw; ++x) {
        float* o = &cond[(((size_t)b * lh + y) * lw + x) * cc];
        o[0] = m[(size_t)(8 * y) * width + 8 * x];
        for (int c = 0; c < lc; ++c) o[1 + c] = masked_latents[(((size_t)b * lc + c) * lh + y) * lw + x];
      }
  return Tensor::from_floats({B, lh, lw, cc}, cond);
}

}  // namespace

// The tiny autoencoder's encoder gives latents, not a distribution: diffusers' retrieve_latents
// takes them as they are and draws nothing from the generator (× its scaling factor, 1). One
// picture (NHWC [1, H, W, 3] floats in [-1, 1]) in, NCHW [1, C, h, w] out.
std::vector<float> Pipeline::taesd_latents(const std::vector<float>& pixels, int width, int height) {
  if (!taesd_encoder_) taesd_encoder_ = std::make_unique<TaesdEncoder>(*taesd_weights_, taesd_config_, precision_, device_);
  std::vector<float> lat = to_nchw(taesd_encoder_->encode(Tensor::from_floats({1, height, width, 3}, pixels)));
  for (float& v : lat) v = taesd_config_.scaling_factor * v;
  return lat;
}

// diffusers' _encode_vae_image: the picture (NHWC [1, H, W, 3] floats in [-1, 1]) encoded once, its
// latent distribution sampled with the generator's next draw — one sample per generator: one in
// batch mode, shared by the images; one per image otherwise — times scaling_factor; NCHW [B, C, h, w].
std::vector<float> Pipeline::encode_sampled(const std::vector<float>& pixels, int width, int height,
                                            LatentNoise& noise, int B) {
  const VaeConfig& vc = vae_config_;
  const int lc = vc.latent_channels, lh = height / 8, lw = width / 8;
  const size_t per = (size_t)lc * lh * lw;
  if (taesd_has_encoder_) {
    const std::vector<float> lat = taesd_latents(pixels, width, height);
    std::vector<float> out((size_t)B * per);
    for (int b = 0; b < B; ++b) std::copy(lat.begin(), lat.end(), out.begin() + (ptrdiff_t)(b * per));
    return out;
  }
  if (!vae_encoder_) {
    const Checkpoint& weights = vae_weights_ ? *vae_weights_ : *checkpoint_;
    vae_encoder_ = std::make_unique<VaeEncoder>(weights, vc, vae_dtype_, device_);
    if (log_) log_("loaded the VAE encoder for the init image");
  }
  const Tensor moments = vae_encoder_->moments(Tensor::from_floats({1, height, width, 3}, pixels));
  const std::vector<float> sample_noise = noise.draw_shared(per);
  const int samples = (int)(sample_noise.size() / per);
  std::vector<float> out((size_t)B * per);
  for (int s = 0; s < samples; ++s) {
    const std::vector<float> one(sample_noise.begin() + (ptrdiff_t)(s * per), sample_noise.begin() + (ptrdiff_t)((s + 1) * per));
    std::vector<float> lat = to_nchw(vae_latent_sample(moments, to_nhwc_host(one, 1, lc, lh, lw)));
    for (float& v : lat) v = vc.scaling_factor * v;
    if (samples == 1) {
      for (int b = 0; b < B; ++b) std::copy(lat.begin(), lat.end(), out.begin() + (ptrdiff_t)(b * per));
    } else {
      std::copy(lat.begin(), lat.end(), out.begin() + (ptrdiff_t)(s * per));
    }
  }
  return out;
}

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
  const bool nine = checkpoint_->config().unet.in_channels == 9;
  const bool pure_noise = p.mask && p.strength == 1.0;  // the inpainting pipeline's is_strength_max
  // x0: the picture's latents for every image; NCHW. A 9-channel model at strength 1 needs none.
  std::vector<float> x0((size_t)B * per, 0.0f);
  if (!(nine && pure_noise)) x0 = encode_sampled(pixels, im.width, im.height, noise, B);
  Start start;
  const std::vector<float> z = noise.draw(per);
  start.x.resize(x0.size());
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

  const std::vector<float> m = binary_mask(*p.mask);
  if (nine) {
    // The masked picture: diffusers' init_image · (mask_condition < 0.5), in [-1, 1].
    std::vector<float> masked(pixels.size());
    for (size_t i = 0; i < masked.size(); ++i) masked[i] = m[i / 3] < 0.5f ? pixels[i] : 0.0f;
    const std::vector<float> masked_latents = encode_sampled(masked, im.width, im.height, noise, B);
    start.cond = inpaint_condition(m, masked_latents, p.width, B, lc, lh, lw);
    if (p.inpaint_latent_noise) {  // as for a regular model, after the masked picture's sample
      std::vector<float> grid((size_t)lh * lw);
      for (int y = 0; y < lh; ++y)
        for (int x = 0; x < lw; ++x) grid[(size_t)y * lw + x] = m[(size_t)(8 * y) * p.width + 8 * x];
      fill_with_latent_noise(noise.draw(per), z, grid, plan.init_x0, plan.init_noise, pure_noise, x0, start.x);
    }
    return start;
  }
  if (!taesd_has_encoder_) (void)noise.draw_shared(per);  // the masked picture's sample (see 5. above)
  std::vector<float> lat_mask((size_t)B * lh * lw * lc);
  for (int b = 0; b < B; ++b)
    for (int y = 0; y < lh; ++y)
      for (int x = 0; x < lw; ++x)
        for (int c = 0; c < lc; ++c)
          lat_mask[(((size_t)b * lh + y) * lw + x) * lc + c] = m[(size_t)(8 * y) * p.width + 8 * x];
  if (p.inpaint_latent_noise) {
    std::vector<float> grid((size_t)lh * lw);
    for (size_t i = 0; i < grid.size(); ++i) grid[i] = lat_mask[i * lc];
    fill_with_latent_noise(noise.draw(per), z, grid, plan.init_x0, plan.init_noise, pure_noise, x0, start.x);
  }
  start.x0 = to_nhwc_host(x0, B, lc, lh, lw);
  start.noise = to_nhwc_host(z, B, lc, lh, lw);
  start.mask = Tensor::from_floats({B, lh, lw, lc}, lat_mask);
  return start;
}

}  // namespace sdgen
