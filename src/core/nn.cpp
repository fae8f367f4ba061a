// Weight loading and construction of the primitive layers (nn.h).
#include "core/nn.h"

#include "sdgen/error.h"

namespace sdgen::nn {

Tensor WeightLoader::finish(const Tensor& host_f32) const {
  // Cast on the host first: the device then only ever receives the final bytes (half of them in
  // fp16), and no device needs an fp32 copy of the weights.
  Tensor t = dtype == DType::F32 ? host_f32 : ops::cast(host_f32, dtype);
  return t.to(device);
}

Tensor WeightLoader::load(const std::string& name, const Shape& shape) const {
  return finish(ckpt.get(name, shape));
}

Tensor WeightLoader::load_conv(const std::string& name, int64_t cout, int64_t cin, int k) const {
  Tensor oihw = ckpt.get(name, {cout, cin, k, k});
  Tensor ohwi = Tensor::empty({cout, k, k, cin});
  const float* src = oihw.f32();
  float* dst = ohwi.f32();
  const int64_t kk = (int64_t)k * k;
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t s = 0; s < kk; ++s) dst[(o * kk + s) * cin + i] = src[(o * cin + i) * kk + s];
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
