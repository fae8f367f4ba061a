// The VAE encoder against diffusers (tests/data/golden/vae_encoder.safetensors, made by
// tests/reference/make_vae_encoder_goldens.py): shared by the CPU test (tests/test_vae_encoder.cpp)
// and the emulated CUDA one (tests/simt/test_vae_encoder_emulated.cpp), so both backends meet the
// same checks and bounds.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "sdgen/ops.h"
#include "vae/vae_encoder.h"

namespace sdgen::vae_golden {

// fp32: we and torch differ in summation order and libm only; the model goldens' bound
// (test_models.cpp, tol_f32: measured ≤ 1.5e-6 of the output's magnitude, margin ~10).
inline double tol_f32(double max_ref) { return 1.5e-5 * std::max(1.0, max_ref); }
// fp16 (weights and every op's output rounded to fp16): test_models.cpp's tol_f16.
inline double tol_f16(double max_ref) { return 1e-2 * std::max(1.0, max_ref); }

class Golden {
 public:
  // file: under tests/data/golden (the TAESD goldens share this reader).
  explicit Golden(const std::string& file = "vae_encoder.safetensors")
      : f_(SafetensorsFile::open(std::string(SDGEN_TEST_DATA) + "/golden/" + file)) {}
  bool has(const std::string& name) const { return f_->find(name) != nullptr; }
  // As a host fp32 tensor, 4-d NCHW permuted to our NHWC.
  Tensor tensor(const std::string& name) const {
    const StTensorInfo* t = f_->find(name);
    if (!t) throw std::runtime_error("golden tensor missing: " + name);
    std::vector<float> v = f_->to_floats(*t);
    if (t->shape.size() != 4) return Tensor::from_floats(t->shape, v);
    const int64_t n = t->shape[0], c = t->shape[1], h = t->shape[2], w = t->shape[3];
    std::vector<float> o(v.size());
    for (int64_t a = 0; a < n; ++a)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x) o[((a * h + y) * w + x) * c + ch] = v[((a * c + ch) * h + y) * w + x];
    return Tensor::from_floats({n, h, w, c}, o);
  }

 private:
  std::unique_ptr<SafetensorsFile> f_;
};

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (float x : t.to_floats()) m = std::max(m, (double)std::fabs(x));
  return m;
}

// max |got - ref|; a shape mismatch or a NaN counts as infinitely wrong.
inline double max_abs_diff(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(shape_str(got.shape()), shape_str(ref.shape()));
  if (got.shape() != ref.shape()) return INFINITY;
  std::vector<float> a = got.to_floats(), b = ref.to_floats();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs((double)a[i] - b[i]);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

// Checks `got` against the golden tensor `name` within tol(max|ref|); returns the error.
inline double expect_near(const Tensor& got, const Tensor& ref, double (*tol)(double), const std::string& what) {
  const double err = max_abs_diff(got, ref), bound = tol(max_abs(ref));
  EXPECT_LE(err, bound) << what;
  std::printf("[ vae encoder ] %s: max|d| %.3g (max|ref| %.3g, bound %.3g)\n", what.c_str(), err, max_abs(ref), bound);
  return err;
}

// The encode golden: every intermediate the reference recorded, the moments, and the Gaussian
// (mean, clamped logvar via the sample, the sample from the reference's own noise). `tag` names
// the run in the messages.
inline void check_encode(const VaeEncoder& enc, double (*tol)(double), const std::string& tag) {
  Golden g;
  int probed = 0;
  Tensor moments = enc.moments(g.tensor("x"), [&](const std::string& name, const Tensor& got) {
    expect_near(got, g.tensor(name), tol, tag + " " + name);
    ++probed;
  });
  EXPECT_EQ(probed, 3 + (int)enc.down_blocks.size());  // conv_in, each level, mid_block, quant_conv
  EXPECT_EQ(moments.device(), Device::CPU);
  EXPECT_EQ(moments.dtype(), DType::F32);
  expect_near(moments, g.tensor("quant_conv"), tol, tag + " moments");
  expect_near(vae_latent_sample(moments, Tensor()), g.tensor("mean"), tol, tag + " mode (mean)");
  // The sample's error: the moments' error through mean + exp(logvar/2)·noise (|noise| ≤ 3.2,
  // std ≤ 2.3 here), so the bound is taken on the sample's own magnitude.
  expect_near(vae_latent_sample(moments, g.tensor("noise")), g.tensor("sample"), tol, tag + " sample");
}

}  // namespace sdgen::vae_golden
