// TAESD against diffusers' AutoencoderTiny (tests/data/golden/taesd.safetensors, made by
// tests/reference/make_taesd_goldens.py on the tiny TAESD in tests/data/tiny_taesd*): shared by the
// CPU test (tests/test_taesd.cpp) and the emulated CUDA one (tests/simt/test_taesd_emulated.cpp).
#pragma once
#include <string>

#include "io/taesd_file.h"
#include "vae/taesd.h"
#include "vae_encoder_golden.h"

namespace sdgen::taesd_golden {

using vae_golden::expect_near;

inline const std::string kFolder = std::string(SDGEN_TEST_DATA) + "/tiny_taesd";
inline const std::string kDecoderFile = std::string(SDGEN_TEST_DATA) + "/tiny_taesd_orig/taesd_decoder.safetensors";
inline const std::string kEncoderFile = std::string(SDGEN_TEST_DATA) + "/tiny_taesd_orig/taesd_encoder.safetensors";

// fp32: the VAE's bound (summation order and libm only). fp16 / bf16 (weights and every op's output
// rounded: 2^-11 / 2^-8 relative per rounding, through ~15 convolutions): relative to the output's
// own magnitude, with no floor at 1 (the tiny encoder's latents are ~0.1, where an absolute 1e-2
// would pass nearly anything).
inline double tol_f16(double max_ref) { return 1e-2 * max_ref; }
inline double tol_bf16(double max_ref) { return 6e-2 * max_ref; }

inline double (*tol_for(DType dt))(double) {
  return dt == DType::F32 ? vae_golden::tol_f32 : dt == DType::F16 ? tol_f16 : tol_bf16;
}

// Decodes the golden z and encodes the golden x with `path`'s TAESD in dtype on device; both halves
// against the reference within the dtype's bound.
inline void check_taesd(const std::string& path, DType dtype, Device device, const std::string& tag) {
  vae_golden::Golden g("taesd.safetensors");
  TaesdFile tf = open_taesd_file(path);
  ASSERT_TRUE(tf.has_decoder && tf.has_encoder) << path;
  TaesdDecoder dec(*tf.weights, tf.config, dtype, device);
  EXPECT_EQ(dec.upscale(), 8);
  expect_near(dec.decode(g.tensor("z")), g.tensor("image"), tol_for(dtype), tag + " decode");
  TaesdEncoder enc(*tf.weights, tf.config, dtype, device);
  EXPECT_EQ(enc.downscale(), 8);
  const Tensor latents = enc.encode(g.tensor("x"));
  EXPECT_EQ(latents.device(), Device::CPU);
  expect_near(latents, g.tensor("latents"), tol_for(dtype), tag + " encode");
}

}  // namespace sdgen::taesd_golden
