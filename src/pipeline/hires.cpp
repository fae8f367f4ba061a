// The hires fix (pipeline/hires.h): two generate() calls and the upscale between them, and the
// second pass's initial latents.
#include <algorithm>

#include "io/checkpoint.h"
#include "io/image_resize.h"
#include "pipeline/pipeline.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "vae/vae.h"
#include "vae/vae_encoder.h"

namespace sdgen {

GeneratedBatch Pipeline::generate_hires(const GenerateParams& p, const StepCallback& on_step) {
  const HiresParams& h = p.hires;
  if (p.init_image) throw_usage("the hires fix starts from text to image, not from an init image");
  if (h.width % 8 || h.height % 8)
    throw_usage("the hires size " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                " is not a multiple of 8 (the latents' 1/8)");
  const SchedulerConfig sched = scheduler_config(p);
  const int steps2 = h.steps > 0 ? h.steps : p.steps;
  // Both plans before any work: a denoise that leaves no step is refused here, not after a pass.
  const int units1 = plan_sampler(p.sampler, sched, p.steps, 0).units;
  const int units2 = plan_sampler(p.sampler, sched, steps2, img2img_begin(steps2, h.denoise)).units;
  const bool lanczos = !is_latent_upscaler(h.upscaler);

  GenerateParams first = p;
  first.hires = {};
  first.record_unit_latents = false;
  first.keep_step_graph = false;  // another shape follows: its buffers go back to the pool
  first.decode = lanczos;
  const GeneratedBatch a =
      generate(first, [&](int d, int) {
        if (on_step) on_step(d, units1 + units2);
      });
  const int B = (int)a.seeds.size();

  GenerateParams second = p;
  second.hires = {};
  second.width = h.width;
  second.height = h.height;
  second.steps = steps2;
  second.strength = h.denoise;
  if (lanczos) {
    auto pictures = std::make_shared<std::vector<RgbImage>>();
    for (const std::vector<uint8_t>& px : a.images) {
      RgbImage im;
      im.width = p.width;
      im.height = p.height;
      im.pixels = px;
      pictures->push_back(resize_lanczos(im, h.width, h.height));
    }
    second.init_pictures = pictures;
  } else {
    second.init_latents = std::make_shared<const std::vector<float>>(
        upscale_latents(a.latents, B, 4, p.height / 8, p.width / 8, h.height / 8, h.width / 8,
                        latent_upscale_mode(h.upscaler)));
  }
  GeneratedBatch b = generate(second, [&](int d, int) {
    if (on_step) on_step(units1 + d, units1 + units2);
  });
  b.times.text_s += a.times.text_s;
  b.times.unet_s += a.times.unet_s;
  b.times.vae_s += a.times.vae_s;
  b.times.total_s += a.times.total_s;
  b.step_graph_reused = false;
  return b;
}

// Each picture encoded by the VAE, and all the distributions sampled by one draw of the
// generator(s); NCHW [B, C, h, w] latents × scaling_factor.
std::vector<float> Pipeline::vae_sampled(const std::vector<std::vector<float>>& pictures, int width, int height,
                                         LatentNoise& noise) {
  const VaeConfig& vc = vae_config_;
  const int lc = vc.latent_channels, lh = height / 8, lw = width / 8;
  const size_t per = (size_t)lc * lh * lw;
  if (!vae_encoder_) {
    const Checkpoint& weights = vae_weights_ ? *vae_weights_ : *checkpoint_;
    vae_encoder_ = std::make_unique<VaeEncoder>(weights, vc, vae_dtype_, device_);
    if (log_) log_("loaded the VAE encoder for the hires pass");
  }
  std::vector<Tensor> moments;
  for (const std::vector<float>& px : pictures)
    moments.push_back(vae_encoder_->moments(Tensor::from_floats({1, height, width, 3}, px)));
  const std::vector<float> sample_noise = noise.draw(per);
  std::vector<float> x0;
  for (size_t b = 0; b < pictures.size(); ++b) {
    const std::vector<float> one(sample_noise.begin() + (ptrdiff_t)(b * per),
                                 sample_noise.begin() + (ptrdiff_t)((b + 1) * per));
    std::vector<float> lat = to_nchw(vae_latent_sample(moments[b], to_nhwc_host(one, 1, lc, lh, lw)));
    for (float& v : lat) v = vc.scaling_factor * v;
    x0.insert(x0.end(), lat.begin(), lat.end());
  }
  return x0;
}

std::vector<float> Pipeline::hires_start(const GenerateParams& p, const SamplerPlan& plan, LatentNoise& noise, int B) {
  const VaeConfig& vc = vae_config_;
  const int lc = vc.latent_channels, lh = p.height / 8, lw = p.width / 8;
  const size_t per = (size_t)lc * lh * lw;
  std::vector<float> x0;
  if (p.init_latents) {
    x0 = *p.init_latents;
  } else {
    // Each image's own picture, encoded: by TAESD where its file has an encoder (latents as they
    // are, no draw, as img2img's), else by the VAE, the batch's latent distributions sampled by one
    // draw of the generator(s), as diffusers encodes and samples a batch of pictures.
    if ((int)p.init_pictures->size() != B) throw_usage("the hires pass needs one picture per image");
    std::vector<std::vector<float>> pictures;
    for (const RgbImage& im : *p.init_pictures) {
      if (im.width != p.width || im.height != p.height) throw_usage("a hires picture is not the hires size");
      std::vector<float> pixels(im.pixels.size());
      for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = 2.0f * ((float)im.pixels[i] / 255.0f) - 1.0f;
      pictures.push_back(std::move(pixels));
    }
    if (taesd_has_encoder_) {
      for (const std::vector<float>& px : pictures) {
        const std::vector<float> lat = taesd_latents(px, p.width, p.height);
        x0.insert(x0.end(), lat.begin(), lat.end());
      }
    } else {
      x0 = vae_sampled(pictures, p.width, p.height, noise);
    }
  }
  if (x0.size() != (size_t)B * per) throw_usage("the hires pass's latents do not have the hires size");
  // add_noise as img2img's: each product rounded to float, then the sum.
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
