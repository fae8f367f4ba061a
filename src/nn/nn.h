// The primitive layers the three models are built from (Linear, Conv2d, GroupNorm, LayerNorm) and
// the loader that brings their weights from a Checkpoint into the model's dtype and device. Each
// layer holds its tensors under the checkpoint's names (weight, bias) and is called like a
// PyTorch module.
#pragma once
#include <string>

#include "io/checkpoint.h"
#include "sdgen/ops.h"
#include "sdgen/tensor.h"

namespace sdgen::nn {

// Where weights go: host tensors from the checkpoint (fp32, or as stored when that is `dtype`),
// converted once to `dtype` and moved to `device`, one tensor at a time: loading holds the model's
// own weights plus one tensor's temporaries, not a second copy of the model.
struct WeightLoader {
  const Checkpoint& ckpt;
  DType dtype;
  Device device;

  // The tensor `name` of shape `shape` (see Checkpoint::get for accepted stored shapes).
  Tensor load(const std::string& name, const Shape& shape) const;
  // A conv weight stored [Cout, Cin, K, K] (OIHW), returned [Cout, K, K, Cin] (OHWI) as ops want.
  Tensor load_conv(const std::string& name, int64_t cout, int64_t cin, int k) const;
  // The host tensor (fp32 or already `dtype`) in the model's dtype and device.
  Tensor finish(const Tensor& host) const;
};

// Joins checkpoint name parts: join("unet.conv_in", "weight") = "unet.conv_in.weight".
inline std::string join(const std::string& prefix, const std::string& leaf) {
  return prefix.empty() ? leaf : prefix + "." + leaf;
}

struct Linear {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
  Linear() = default;
  Linear(const WeightLoader& w, const std::string& name, int64_t in, int64_t out, bool has_bias);
  // residual (optional, the output's shape) is added to the result: a skip connection.
  Tensor operator()(const Tensor& x, const Tensor& residual = Tensor()) const {
    return ops::linear(x, weight, bias, residual);
  }
};

struct Conv2d {
  Tensor weight;  // [out, k, k, in]
  Tensor bias;    // [out]
  int stride = 1;
  int padding = 0;
  Conv2d() = default;
  // Square kernel k, zero padding k/2 (every conv in SD v1 is "same" padded), with bias.
  Conv2d(const WeightLoader& w, const std::string& name, int64_t in, int64_t out, int k,
         int stride = 1);
  // add (optional): the output's shape, or [N, out] per image and channel (ops::conv2d).
  Tensor operator()(const Tensor& x, const Tensor& add = Tensor()) const {
    return ops::conv2d(x, weight, bias, stride, padding, add);
  }
};

struct GroupNorm {
  Tensor weight, bias;  // [C]
  int groups = 32;
  float eps = 1e-5f;
  GroupNorm() = default;
  GroupNorm(const WeightLoader& w, const std::string& name, int64_t channels, int groups,
            float eps);
  // silu=true applies SiLU after the affine (every GroupNorm in SD but the transformer's is
  // followed by one, so the backends fuse it).
  Tensor operator()(const Tensor& x, bool silu = false) const {
    return ops::group_norm(x, weight, bias, groups, eps, silu);
  }
};

struct LayerNorm {
  Tensor weight, bias;  // [C]
  float eps = 1e-5f;
  LayerNorm() = default;
  LayerNorm(const WeightLoader& w, const std::string& name, int64_t channels, float eps);
  Tensor operator()(const Tensor& x) const { return ops::layer_norm(x, weight, bias, eps); }
};

}  // namespace sdgen::nn
