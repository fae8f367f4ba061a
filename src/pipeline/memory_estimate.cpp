// The memory estimate (memory_estimate.h): the dry passes' parameters and live sets, the factors.
#include "pipeline/memory_estimate.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>

#include "pipeline/dry_run.h"
#include "sdgen/error.h"

namespace sdgen {

uint64_t MemoryEstimate::activations() const {
  // The encode runs before the denoising loop, alone.
  return std::max(stages_add ? unet + vae : std::max(unet, vae), vae_encode) + other;
}

MemoryEstimate estimate_memory(const ModelConfig& m, const MemoryRequest& r) {
  const bool cuda = r.device == Device::CUDA;
  const bool f16 = is_half_dtype(r.precision);  // fp16 or bf16: 2-byte storage alike
  const double esize = f16 ? 2 : 4;
  MemoryEstimate e;
  // Dry passes of the models at this request's shapes (dry_run.h), in fp32: their live sets in
  // elements, the factors below turning them into bytes per backend.
  const int rows = r.batch * (r.guidance ? 2 : 1);
  const PassCost clip = clip_pass(m.clip, 1);
  const int64_t clip2_parameters = m.sdxl() ? clip_pass(m.clip2, 1).parameters : 0;  // SDXL's second encoder
  // force_upcast (SDXL's VAE): the autoencoder in fp32 whatever the precision.
  const bool vae_f16 = f16 && !(m.sdxl() && m.vae.force_upcast);
  const double vae_esize = vae_f16 ? 2 : 4;
  const PassCost unet =
      unet_pass(m.unet, rows, r.height / 8, r.width / 8, m.clip.max_positions, DType::F32, r.controlnets);
  const int vae_images = std::max(1, std::min(r.vae_batch, r.batch));
  const PassCost vae = r.vae_tiny ? taesd_decoder_pass(TaesdConfig(), vae_images, r.height, r.width)
                                  : vae_decoder_pass(m.vae, vae_images, r.height, r.width);
  e.weights = (uint64_t)((double)(clip.parameters + clip2_parameters + unet.parameters) * esize +
                         (double)vae.parameters * vae_esize);
  // Images in: the encoder's weights, and its pass on as many images as a decode pass takes. Its
  // live set is a VAE's (the same blocks at the same sizes, run in the other direction): the
  // decoder's factors apply.
  double encode_live = 0;
  if (r.encoder) {
    const PassCost enc = vae_encoder_pass(m.vae, std::max(1, std::min(r.vae_batch, r.batch)), r.height, r.width);
    e.weights += (uint64_t)((double)enc.parameters * vae_esize);
    encode_live = (double)enc.live_bytes / 4;
  }
  const double latent_px = (double)(r.width / 8) * (r.height / 8);
  const double unet_live = (double)unet.live_bytes / 4;
  const double vae_live = (double)vae.live_bytes / 4;
  // The fp32 latents with the sampler's state and per-step noise (at most one buffer per unit, two
  // units per step), on the device and as host copies; the 8-bit images, twice on the host.
  const double latents = 4.0 * m.unet.in_channels * r.batch * latent_px * (2.0 * r.steps + 6);
  const double images = 2.0 * 3 * r.batch * (double)r.width * r.height;
  constexpr double MiB = 1024.0 * 1024.0;
  // Resident before any work: 8 MiB at --version, 36 MiB for a 64x64 tiny-model run; a process
  // that has opened the CUDA libraries (cuBLAS, cuDNN) holds 220 MiB more from their load-time
  // relocations and initializers.
  const double process = (r.cuda_libraries_loaded ? 256 : 64) * MiB;
  if (cuda) {
    e.unet = (uint64_t)(2.5 * esize * unet_live);
    e.vae = (uint64_t)(2.0 * vae_esize * vae_live);
    e.vae_encode = (uint64_t)(2.0 * vae_esize * encode_live);
    // Library workspaces (cuBLASLt and cuDNN are each capped at 32 MiB a call, kConvWorkspaceCap
    // in src/backend/cuda/cuda_backend.h), the text encoder's activations.
    e.other = (uint64_t)(latents + 64 * MiB);
    e.stages_add = r.keep_step_graph;
  } else {
    e.unet = (uint64_t)((f16 ? 1.6 : 1.5) * 4 * unet_live);
    e.vae = (uint64_t)((vae_f16 ? 1.6 : 1.5) * 4 * vae_live);
    e.vae_encode = (uint64_t)((vae_f16 ? 1.6 : 1.5) * 4 * encode_live);
    e.other = (uint64_t)(2 * latents + images + process + 48 * MiB * std::max(1, r.threads));
  }
  return e;
}

// Each size in the largest unit it fills at least once, so that no figure reads 0 when it is not
// (--max-memory 1 is one byte, not "0 MiB").
std::string format_bytes(uint64_t bytes) {
  char buf[32];
  const double kib = (double)bytes / 1024, mib = kib / 1024, gib = mib / 1024;
  if (gib >= 1) std::snprintf(buf, sizeof buf, "%.1f GiB", gib);
  else if (mib >= 1) std::snprintf(buf, sizeof buf, "%.0f MiB", mib);
  else if (kib >= 1) std::snprintf(buf, sizeof buf, "%.0f KiB", kib);
  else std::snprintf(buf, sizeof buf, "%llu B", (unsigned long long)bytes);
  return buf;
}

std::string describe(const MemoryEstimate& e) {
  return format_bytes(e.total()) + " (weights " + format_bytes(e.weights) + ", UNet " + format_bytes(e.unet) +
         ", VAE decode " + format_bytes(e.vae) + (e.stages_add ? " held together" : "") +
         (e.vae_encode ? ", VAE encode " + format_bytes(e.vae_encode) : "") + ", other " + format_bytes(e.other) + ")";
}

uint64_t parse_byte_size(const std::string& text, const std::string& what) {
  auto bad = [&]() -> uint64_t {
    throw_usage(what + " '" + text + "' is not a size: a number of bytes, or with K, M, G or T (binary: 8G is 8 GiB)");
  };
  size_t i = 0;
  while (i < text.size() && (std::isdigit((unsigned char)text[i]) || text[i] == '.')) ++i;
  if (i == 0 || std::count(text.begin(), text.begin() + (ptrdiff_t)i, '.') > 1) return bad();
  const double value = std::strtod(text.substr(0, i).c_str(), nullptr);
  std::string unit = text.substr(i);
  for (char& ch : unit) ch = (char)std::toupper((unsigned char)ch);
  if (unit.size() >= 2 && unit.back() == 'B') unit.pop_back();           // GB, GiB → G, Gi
  if (unit.size() == 2 && unit[1] == 'I') unit.pop_back();               // Gi → G
  static const std::map<std::string, double> scale = {
      {"", 1}, {"B", 1}, {"K", 1024.0}, {"M", 1024.0 * 1024}, {"G", 1024.0 * 1024 * 1024},
      {"T", 1024.0 * 1024 * 1024 * 1024}};
  const auto it = scale.find(unit);
  if (it == scale.end()) return bad();
  const double bytes = value * it->second;
  if (!(bytes >= 1) || bytes > 1.8e19) return bad();
  return (uint64_t)bytes;
}

}  // namespace sdgen
