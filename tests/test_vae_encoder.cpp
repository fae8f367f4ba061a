// The VAE encoder (src/vae/vae_encoder.h) against diffusers' AutoencoderKL on the tiny models
// (tests/vae_encoder_golden.h, tests/data/golden/vae_encoder.safetensors made by
// tests/reference/make_vae_encoder_goldens.py): from every checkpoint layout the decoder loads
// from, fp32 and fp16, plain and fast CPU paths; the Gaussian's sample from hand-derived values;
// GroupNorm eps pinned on quiet inputs; a decoder-only VAE file refused in one line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/vae_file.h"
#include "pipeline/pipeline.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "vae/vae_encoder.h"
#include "vae_encoder_golden.h"

using namespace sdgen;
using namespace sdgen::vae_golden;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;

const Checkpoint& checkpoint(const std::string& form) {
  static std::map<std::string, std::unique_ptr<Checkpoint>> cache;
  auto it = cache.find(form);
  if (it != cache.end()) return *it->second;
  const std::string path = form == "ldm"        ? kData + "/tiny_sd/tiny_sd.safetensors"
                           : form == "ldm_fp16" ? kData + "/tiny_sd/tiny_sd_fp16.safetensors"
                                                : kData + "/tiny_sd/diffusers";
  return *(cache[form] = Checkpoint::open(path));
}

struct EncRun {
  const char* form;
  DType dtype;
  double (*tol)(double);
  bool plain = false;
};

class VaeEncoderGolden : public ::testing::TestWithParam<EncRun> {
 protected:
  void SetUp() override { set_cpu_plain(GetParam().plain); }
  void TearDown() override { set_cpu_plain(false); }
};

TEST_P(VaeEncoderGolden, MomentsAndSample) {
  const EncRun& r = GetParam();
  const Checkpoint& ck = checkpoint(r.form);
  VaeEncoder enc(ck, ck.config().vae, r.dtype, Device::CPU);
  EXPECT_EQ(enc.downscale(), 8);
  check_encode(enc, r.tol, std::string(r.form) + " " + dtype_name(r.dtype) + (r.plain ? " plain" : ""));
}

const EncRun kRuns[] = {
    {"ldm", DType::F32, tol_f32},          {"diffusers", DType::F32, tol_f32},
    {"diffusers", DType::F16, tol_f16},    {"ldm_fp16", DType::F16, tol_f16},
    {"ldm", DType::F32, tol_f32, true},
};

INSTANTIATE_TEST_SUITE_P(TinySd, VaeEncoderGolden, ::testing::ValuesIn(kRuns),
                         [](const ::testing::TestParamInfo<EncRun>& info) {
                           return std::string(info.param.form) + "_" + dtype_name(info.param.dtype) +
                                  (info.param.plain ? "_plain" : "");
                         });

// The second tiny VAE as --vae gives it: its diffusers folder and its bare-LDM fp16 single file
// (the same values), both with encoder tensors.
TEST(VaeEncoderFiles, VaeFileFolderAndLdmFile) {
  Golden g;
  const ModelConfig& base = checkpoint("diffusers").config();
  for (const std::string& path : {kData + "/tiny_vae", kData + "/tiny_vae_ldm.safetensors"}) {
    VaeFile vf = open_vae_file(path, base);
    VaeEncoder enc(*vf.weights, vf.config, DType::F32, Device::CPU);
    expect_near(enc.moments(g.tensor("x")), g.tensor("tiny_vae.quant_conv"), tol_f32, "--vae " + path);
  }
}

// A VAE file without encoder tensors (decoder-only) decodes, but asking it to encode is one line
// naming the file.
TEST(VaeEncoderFiles, DecoderOnlyFileIsOneClearLine) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_vae_enc_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "decoder_only.safetensors").string();
  {
    auto src = SafetensorsFile::open(kData + "/tiny_vae_ldm.safetensors");
    std::vector<StWriteTensor> keep;
    for (const StTensorInfo& t : src->tensors())
      if (t.name.rfind("encoder.", 0) != 0 && t.name.rfind("quant_conv.", 0) != 0)
        keep.push_back(st_tensor_from_floats(t.name, StDType::F32, t.shape, src->to_floats(t)));
    write_safetensors(path, keep);
  }
  const ModelConfig& base = checkpoint("diffusers").config();
  VaeFile vf = open_vae_file(path, base);
  VaeDecoder dec(*vf.weights, vf.config, DType::F32, Device::CPU);  // still decodes
  try {
    VaeEncoder enc(*vf.weights, vf.config, DType::F32, Device::CPU);
    ADD_FAILURE() << "a decoder-only file gave an encoder";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.code(), ExitCode::kModel);
    EXPECT_NE(m.find("decoder_only.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("no VAE encoder"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  fs::remove_all(dir);
}

// The pipeline loads the encoder only when asked.
TEST(VaeEncoderFiles, PipelineLoadsTheEncoderOnRequest) {
  Pipeline plain(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  EXPECT_EQ(plain.vae_encoder(), nullptr);
  ModelOptions o;
  o.need_encoder = true;
  Pipeline with(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU, nullptr, o);
  ASSERT_NE(with.vae_encoder(), nullptr);
  Golden g;
  expect_near(with.vae_encoder()->moments(g.tensor("x")), g.tensor("quant_conv"), tol_f32, "pipeline encoder");
}

// diffusers' DiagonalGaussianDistribution by hand: logvar clamped to [-30, 20] before
// std = exp(logvar / 2); sample = mean + std·noise; no noise gives the mean.
TEST(VaeLatentSample, ClampAndHalfLogvarByHand) {
  // One pixel, C = 4: means, then logvars 50 (clamped to 20), -50 (to -30), 2, 0.
  Tensor m = Tensor::from_floats({1, 1, 1, 8}, {1, -2, 0.5f, 3, 50, -50, 2, 0});
  Tensor e = Tensor::from_floats({1, 1, 1, 4}, {1, 1, -1, 2});
  std::vector<float> s = vae_latent_sample(m, e).to_floats();
  EXPECT_FLOAT_EQ(s[0], 1 + std::exp(10.0f));
  EXPECT_FLOAT_EQ(s[1], -2 + std::exp(-15.0f));
  EXPECT_FLOAT_EQ(s[2], 0.5f - std::exp(1.0f));
  EXPECT_FLOAT_EQ(s[3], 3 + 2.0f);
  std::vector<float> mode = vae_latent_sample(m, Tensor()).to_floats();
  EXPECT_EQ(mode, (std::vector<float>{1, -2, 0.5f, 3}));
  EXPECT_THROW(vae_latent_sample(m, Tensor::from_floats({1, 1, 1, 3}, {0, 0, 0})), Error);
}

// The reference's own moments and noise through our Gaussian give its sample to an ulp or two
// (exp may differ by one ulp from torch's).
TEST(VaeLatentSample, FromGoldenMomentsMatchesTorch) {
  Golden g;
  Tensor ref = g.tensor("sample");
  const double err = max_abs_diff(vae_latent_sample(g.tensor("quant_conv"), g.tensor("noise")), ref);
  EXPECT_LE(err, 4 * std::ldexp(max_abs(ref), -23));
}

TEST(VaeEncoderInput, RejectsBadShapes) {
  const Checkpoint& ck = checkpoint("diffusers");
  VaeEncoder enc(ck, ck.config().vae, DType::F32, Device::CPU);
  EXPECT_THROW(enc.moments(Tensor::zeros({1, 12, 16, 3})), Error);  // not /8
  EXPECT_THROW(enc.moments(Tensor::zeros({1, 16, 16, 4})), Error);  // channels
  EXPECT_THROW(enc.moments(Tensor::zeros({16, 16, 3})), Error);
}

// Quiet inputs (std 1e-3, variance 1e-6): every GroupNorm eps of the VAE matters at order 1 here
// (eps 1e-6 against 1e-5 scales the normalized values by 0.3), where the whole-model goldens
// (variance ~1) would move by ~1e-5. Run as the models built them, so a wrong eps in the config or
// in the wiring shows.
class QuietVaeBlocks : public ::testing::Test {
 protected:
  Golden g;
  const Checkpoint& ck = checkpoint("diffusers");
  void check(const Tensor& got, const std::string& name, const std::string& what) {
    expect_near(got, g.tensor("quiet." + name + ".out"), tol_f32, "quiet " + name + ": " + what);
  }
};

TEST_F(QuietVaeBlocks, EncoderResnet) {
  VaeEncoder enc(ck, ck.config().vae, DType::F32, Device::CPU);
  check(enc.down_blocks[0].resnets[0](g.tensor("quiet.enc_resnet.x")), "enc_resnet",
        "encoder.down_blocks.0.resnets.0: GroupNorm eps 1e-6 (VaeConfig::norm_eps)");
}

TEST_F(QuietVaeBlocks, EncoderMidAttentionGroupNorm) {
  VaeEncoder enc(ck, ck.config().vae, DType::F32, Device::CPU);
  check(enc.mid_block.attentions[0](g.tensor("quiet.enc_attn.x")), "enc_attn",
        "encoder.mid_block.attentions.0: its group_norm eps 1e-6");
}

TEST_F(QuietVaeBlocks, EncoderConvNormOut) {
  VaeEncoder enc(ck, ck.config().vae, DType::F32, Device::CPU);
  check(enc.conv_norm_out(g.tensor("quiet.enc_norm_out.x"), /*silu=*/true), "enc_norm_out",
        "encoder.conv_norm_out + SiLU: eps 1e-6");
}

TEST_F(QuietVaeBlocks, DecoderConvNormOut) {
  VaeDecoder dec(ck, ck.config().vae, DType::F32, Device::CPU);
  check(dec.conv_norm_out(g.tensor("quiet.dec_norm_out.x"), /*silu=*/true), "dec_norm_out",
        "decoder.conv_norm_out + SiLU: eps 1e-6");
}

}  // namespace
