// The memory estimate (memory_estimate.h): parameter counts, the live-set walks, the factors.
#include "pipeline/memory_estimate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

#include "sdgen/error.h"

namespace sdgen {

namespace {

int64_t linear(int64_t in, int64_t out, bool bias = true) { return in * out + (bias ? out : 0); }
int64_t conv(int64_t in, int64_t out, int64_t k) { return in * out * k * k + out; }
int64_t norm(int64_t c) { return 2 * c; }

int64_t resnet_params(int64_t in, int64_t out, int64_t temb) {
  return norm(in) + conv(in, out, 3) + (temb > 0 ? linear(temb, out) : 0) + norm(out) + conv(out, out, 3) +
         (in != out ? conv(in, out, 1) : 0);
}

// Transformer2DModel with one BasicTransformerBlock (SD v1).
int64_t transformer_params(int64_t c, int64_t cross) {
  const int64_t block = 3 * norm(c) + 3 * linear(c, c, false) + linear(c, c) +  // attn1
                        linear(c, c, false) + 2 * linear(cross, c, false) + linear(c, c) +  // attn2
                        linear(c, 8 * c) + linear(4 * c, c);                                 // ff
  return norm(c) + linear(c, c) + block + linear(c, c);
}

// Live tensors in elements per unit of the walk's scale (a latent pixel of one UNet row, an output
// pixel of one VAE image): alloc adds, free removes, peak is the most held at once.
class Live {
 public:
  int alloc(double channels, double scale) {
    const double e = channels * scale;
    held_[++next_] = e;
    now_ += e;
    peak_ = std::max(peak_, now_);
    return next_;
  }
  void free(std::initializer_list<int> ids) {
    for (int id : ids) {
      auto it = held_.find(id);
      if (it == held_.end()) continue;
      now_ -= it->second;
      held_.erase(it);
    }
  }
  double peak() const { return peak_; }

 private:
  std::map<int, double> held_;
  double now_ = 0, peak_ = 0;
  int next_ = 0;
};

// ResnetBlock2D::operator(): norm1 → conv1 (norm1's output goes), norm2, the shortcut, conv2; the
// input stays with the caller. Returns the output.
int resnet_walk(Live& t, double in, double out, double s) {
  const int n1 = t.alloc(in, s), h = t.alloc(out, s);
  t.free({n1});
  const int n2 = t.alloc(out, s);
  const int sc = in != out ? t.alloc(out, s) : 0;
  const int y = t.alloc(out, s);
  t.free({h, n2, sc});
  return y;
}

// Transformer2DModel::operator(): norm and proj_in, the block (self-attention, cross-attention,
// the GEGLU feed-forward with its 8c projection), proj_out with the input as residual.
int transformer_walk(Live& t, double c, double s) {
  const int g = t.alloc(c, s), h0 = t.alloc(c, s);
  t.free({g});
  int a = t.alloc(c, s), q = t.alloc(c, s), o = t.alloc(c, s);
  const int h1 = t.alloc(c, s);
  t.free({a, q, o});
  a = t.alloc(c, s), q = t.alloc(c, s), o = t.alloc(c, s);
  const int h2 = t.alloc(c, s);
  t.free({a, q, o, h1});
  const int n3 = t.alloc(c, s), p = t.alloc(8 * c, s), gg = t.alloc(4 * c, s), h3 = t.alloc(c, s);
  t.free({n3, p, gg, h2});
  const int y = t.alloc(c, s);
  t.free({h3, h0});
  return y;
}

}  // namespace

int64_t clip_parameters(const ClipConfig& c) {
  const int64_t d = c.hidden;
  const int64_t layer = norm(d) + 4 * linear(d, d) + norm(d) + linear(d, c.intermediate) + linear(c.intermediate, d);
  return (int64_t)c.vocab_size * d + (int64_t)c.max_positions * d + c.layers * layer + norm(d);
}

int64_t unet_parameters(const UNetConfig& c) {
  const std::vector<int>& ch = c.block_channels;
  const size_t levels = ch.size();
  const int64_t temb = c.time_embed_dim(), cross = c.cross_attention_dim;
  int64_t n = linear(ch[0], temb) + linear(temb, temb) + conv(c.in_channels, ch[0], 3);
  std::vector<int64_t> skips{ch[0]};
  int64_t out = ch[0];
  for (size_t i = 0; i < levels; ++i) {
    for (int j = 0; j < c.layers_per_block; ++j) {
      n += resnet_params(j == 0 ? out : ch[i], ch[i], temb);
      if (c.down_attention[i]) n += transformer_params(ch[i], cross);
      skips.push_back(ch[i]);
    }
    out = ch[i];
    if (i + 1 < levels) {
      n += conv(ch[i], ch[i], 3);
      skips.push_back(ch[i]);
    }
  }
  n += 2 * resnet_params(out, out, temb) + transformer_params(out, cross);
  int64_t prev = out;
  for (size_t i = 0; i < levels; ++i) {
    const size_t level = levels - 1 - i;
    for (int j = 0; j <= c.layers_per_block; ++j) {
      n += resnet_params(prev + skips.back(), ch[level], temb);
      skips.pop_back();
      prev = ch[level];
      if (c.down_attention[level]) n += transformer_params(ch[level], cross);
    }
    if (i + 1 < levels) n += conv(ch[level], ch[level], 3);
  }
  return n + norm(ch[0]) + conv(ch[0], c.out_channels, 3);
}

int64_t vae_decoder_parameters(const VaeConfig& c) {
  const std::vector<int> ch(c.block_channels.rbegin(), c.block_channels.rend());
  int64_t n = conv(c.latent_channels, c.latent_channels, 1) + conv(c.latent_channels, ch[0], 3);
  n += 2 * resnet_params(ch[0], ch[0], 0) + norm(ch[0]) + 4 * linear(ch[0], ch[0]);
  int64_t prev = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    for (int j = 0; j <= c.layers_per_block; ++j) n += resnet_params(j == 0 ? prev : ch[i], ch[i], 0);
    if (i + 1 < ch.size()) n += conv(ch[i], ch[i], 3);
    prev = ch[i];
  }
  return n + norm(prev) + conv(prev, c.out_channels, 3);
}

double unet_live_elements_per_latent_pixel(const UNetConfig& c) {
  const std::vector<int>& ch = c.block_channels;
  const size_t levels = ch.size();
  Live t;
  double s = 1;  // pixels of the current level per latent pixel
  int h = t.alloc(ch[0], s);  // conv_in
  std::vector<std::pair<int, double>> skips{{h, ch[0]}};
  double in = ch[0];
  for (size_t i = 0; i < levels; ++i) {
    for (int j = 0; j < c.layers_per_block; ++j) {
      h = resnet_walk(t, in, ch[i], s);  // its input is a skip: it stays
      in = ch[i];
      if (c.down_attention[i]) {
        const int y = transformer_walk(t, ch[i], s);
        t.free({h});
        h = y;
      }
      skips.push_back({h, ch[i]});
    }
    if (i + 1 < levels) {
      s /= 4;
      h = t.alloc(ch[i], s);
      skips.push_back({h, ch[i]});
    }
  }
  const double mid = ch.back();
  int y = resnet_walk(t, mid, mid, s);  // the mid block's input is the last skip
  h = y;
  y = transformer_walk(t, mid, s);
  t.free({h});
  h = y;
  y = resnet_walk(t, mid, mid, s);
  t.free({h});
  h = y;
  double prev = mid;
  for (size_t i = 0; i < levels; ++i) {
    const size_t level = levels - 1 - i;
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const auto [skip, skip_ch] = skips.back();
      skips.pop_back();
      const int cat = t.alloc(prev + skip_ch, s);
      t.free({h, skip});
      h = resnet_walk(t, prev + skip_ch, ch[level], s);
      t.free({cat});
      prev = ch[level];
      if (c.down_attention[level]) {
        y = transformer_walk(t, ch[level], s);
        t.free({h});
        h = y;
      }
    }
    if (i + 1 < levels) {
      s *= 4;
      const int up = t.alloc(prev, s);
      y = t.alloc(prev, s);
      t.free({up, h});
      h = y;
    }
  }
  t.alloc(ch[0], s);  // conv_norm_out, then conv_out's few channels
  t.alloc(c.out_channels, s);
  return t.peak();
}

double vae_live_elements_per_pixel(const VaeConfig& c) {
  const std::vector<int> ch(c.block_channels.rbegin(), c.block_channels.rend());
  Live t;
  double s = 1.0 / std::pow(4.0, (double)ch.size() - 1);  // latent pixels per output pixel
  const int in = t.alloc(ch[0], s);  // conv_in
  int h = resnet_walk(t, ch[0], ch[0], s);
  t.free({in});
  // The mid attention: group norm, q, k, v, the output, to_out with the residual.
  const int g = t.alloc(ch[0], s), q = t.alloc(ch[0], s), k = t.alloc(ch[0], s), v = t.alloc(ch[0], s);
  const int o = t.alloc(ch[0], s), a = t.alloc(ch[0], s);
  t.free({g, q, k, v, o, h});
  h = resnet_walk(t, ch[0], ch[0], s);
  t.free({a});
  double prev = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const int y = resnet_walk(t, prev, ch[i], s);
      t.free({h});
      h = y;
      prev = ch[i];
    }
    if (i + 1 < ch.size()) {
      s *= 4;
      const int up = t.alloc(prev, s), y = t.alloc(prev, s);
      t.free({up, h});
      h = y;
    }
  }
  t.alloc(prev, s);  // conv_norm_out, then the image
  t.alloc(c.out_channels, s);
  return t.peak();
}

uint64_t MemoryEstimate::activations() const {
  return (stages_add ? unet + vae : std::max(unet, vae)) + other;
}

MemoryEstimate estimate_memory(const ModelConfig& m, const MemoryRequest& r) {
  const bool cuda = r.device == Device::CUDA;
  const bool f16 = r.precision == DType::F16;
  const double esize = f16 ? 2 : 4;
  MemoryEstimate e;
  e.weights = (uint64_t)((double)(clip_parameters(m.clip) + unet_parameters(m.unet) +
                                  vae_decoder_parameters(m.vae)) * esize);
  const double latent_px = (double)(r.width / 8) * (r.height / 8);
  const double rows = (double)r.batch * (r.guidance ? 2 : 1);
  const double unet_live = unet_live_elements_per_latent_pixel(m.unet) * rows * latent_px;
  const double vae_live = vae_live_elements_per_pixel(m.vae) * (double)r.width * r.height;  // one per pass
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
    e.vae = (uint64_t)(2.0 * esize * vae_live);
    // Library workspaces (cuBLASLt and cuDNN are each capped at 32 MiB a call, kConvWorkspaceCap
    // in src/backend/cuda/cuda_backend.h), the text encoder's activations.
    e.other = (uint64_t)(latents + 64 * MiB);
    e.stages_add = r.keep_step_graph;
  } else {
    e.unet = (uint64_t)((f16 ? 1.6 : 1.5) * 4 * unet_live);
    e.vae = (uint64_t)((f16 ? 1.6 : 1.5) * 4 * vae_live);
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
         ", VAE decode " + format_bytes(e.vae) + (e.stages_add ? " held together" : "") + ", other " +
         format_bytes(e.other) + ")";
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
