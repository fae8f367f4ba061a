// Weight loading and construction of the primitive layers (nn.h).
#include "nn/nn.h"

#include <cmath>
#include <cstring>

#include "core/interrupt.h"
#include "sdgen/error.h"

namespace sdgen::nn {

namespace {

// OIHW -> OHWI, for either element size (fp32, or fp16 as stored).
template <class T>
void oihw_to_ohwi(const T* src, T* dst, int64_t cout, int64_t cin, int64_t kk) {
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t s = 0; s < kk; ++s) dst[(o * kk + s) * cin + i] = src[(o * cin + i) * kk + s];
}

// A stored tensor as it comes from the file: NaN or Inf weights would give a black or garbage image
// with every other check passing, so they are refused here, naming the tensor. Also where a stop
// request is seen while a model loads (each tensor is a few milliseconds at most).
const Tensor& checked(const std::string& name, const Tensor& t) {
  throw_if_interrupted("loading the model");
  if (t.device() == Device::Meta) return t;  // a dry pass's weight: a shape, no values
  const int64_t n = t.numel();
  int64_t bad = 0;
  if (t.dtype() == DType::F16) {
    const uint16_t* p = t.data_as<uint16_t>();
    for (int64_t i = 0; i < n; ++i) bad += (p[i] & 0x7c00) == 0x7c00;  // exponent all ones: Inf or NaN
  } else if (t.dtype() == DType::BF16) {
    const uint16_t* p = t.data_as<uint16_t>();
    for (int64_t i = 0; i < n; ++i) bad += (p[i] & 0x7f80) == 0x7f80;  // likewise
  } else if (t.dtype() == DType::F32) {
    const float* p = t.data_as<float>();
    for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
  }
  if (bad)
    throw_model("tensor '" + name + "' holds " + std::to_string(bad) + " non-finite value" + (bad > 1 ? "s" : "") +
                " (NaN/Inf) of " + std::to_string(n) + "; the file is damaged");
  return t;
}

}  // namespace

Tensor WeightLoader::finish(const Tensor& host) const {
  // Cast on the host first: the device then only ever receives the final bytes (half of them in
  // fp16), and no device needs an fp32 copy of the weights.
  Tensor t = host.dtype() == dtype ? host : ops::cast(host, dtype);
  return t.to(device);
}

Tensor WeightLoader::load(const std::string& name, const Shape& shape) const {
  return finish(checked(name, ckpt.get_stored(name, shape, dtype)));
}

Tensor WeightLoader::load_conv(const std::string& name, int64_t cout, int64_t cin, int k) const {
  Tensor oihw = ckpt.get_stored(name, {cout, cin, k, k}, dtype);
  checked(name, oihw);
  // A 1×1 kernel is laid out alike either way; a meta tensor has only its shape to change.
  if (k == 1 || oihw.device() == Device::Meta) return finish(oihw.reshape({cout, k, k, cin}));
  Tensor ohwi = Tensor::empty({cout, k, k, cin}, oihw.dtype());
  const int64_t kk = (int64_t)k * k;
  if (is_half_dtype(oihw.dtype())) {
    oihw_to_ohwi(oihw.data_as<uint16_t>(), ohwi.data_as<uint16_t>(), cout, cin, kk);
  } else {
    oihw_to_ohwi(oihw.f32(), ohwi.f32(), cout, cin, kk);
  }
  return finish(ohwi);
}

Linear::Linear(const WeightLoader& w, const std::string& name, int64_t in, int64_t out,
               bool has_bias)
    : weight(w.load(join(name, "weight"), {out, in})) {
  if (has_bias) bias = w.load(join(name, "bias"), {out});
}

Conv2d::Conv2d(const WeightLoader& w, const std::string& name, int64_t in, int64_t out, int k,
               int stride_)
    : weight(w.load_conv(join(name, "weight"), out, in, k)),
      bias(w.load(join(name, "bias"), {out})),
      stride(stride_),
      padding(k / 2) {}

GroupNorm::GroupNorm(const WeightLoader& w, const std::string& name, int64_t channels,
                     int groups_, float eps_)
    : weight(w.load(join(name, "weight"), {channels})),
      bias(w.load(join(name, "bias"), {channels})),
      groups(groups_),
      eps(eps_) {
  if (channels % groups != 0)
    throw_model(name + ": " + std::to_string(channels) + " channels do not split into " +
                std::to_string(groups) + " groups");
}

LayerNorm::LayerNorm(const WeightLoader& w, const std::string& name, int64_t channels, float eps_)
    : weight(w.load(join(name, "weight"), {channels})),
      bias(w.load(join(name, "bias"), {channels})),
      eps(eps_) {}

}  // namespace sdgen::nn
