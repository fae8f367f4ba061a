// Golden tests of the three models: CLIP last hidden state, UNet eps and VAE decode of the tiny
// random-weight SD v1 models (tests/data/tiny_sd) against transformers/diffusers outputs
// (tests/data/golden/{clip,unet,vae}.safetensors, made by tests/reference/make_goldens.py). Each
// runs from both checkpoint forms (LDM single file, diffusers folder) and in fp16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"
#include "text/clip.h"
#include "unet/unet.h"
#include "vae/vae.h"

using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;

// fp32 bound: the references and we differ only in summation order and libm. One output element is
// a chain of ~10 (CLIP) to ~30 (UNet) layers, each a dot product of at most a few hundred terms
// (tiny models: K ≤ 9·64) whose rounding error is ~√K·2^-24 ≈ 1.5e-6 relative, partly cancelling
// through the normalizations; measured at most 1.5e-6 of the output's magnitude (CLIP 3.5e-6 at
// max|ref| 2.4, UNet 3.0e-6 at 2.3, VAE 4.5e-6 at 3.9, the block probes alike). 1.5e-5 keeps a
// margin of about 10; a real mistake (a wrong eps, scale, bias, transpose) moves outputs by far more.
double tol_f32(double max_ref) { return 1.5e-5 * std::max(1.0, max_ref); }

// fp16 (fp16-stored weights, or fp16 compute, where every op also rounds its output to fp16):
// relative rounding 2^-11 ≈ 4.9e-4 per weight and per activation, compounded through ~10 (CLIP)
// to ~30 (UNet) residual layers with gain about 1. The tiny models' dot products are short (CLIP
// hidden 8), so the roundings hardly average out, and CLIP's LayerNorms over 8 values amplify
// them. Measured: at most 3.4e-3 of the output's magnitude (CLIP), 2.7e-3 (UNet), 1.3e-3 (VAE);
// 1e-2 keeps a margin of about 3 and still fails on any structural error (those are of order 1).
double tol_f16(double max_ref) { return 1e-2 * std::max(1.0, max_ref); }

class Golden {
 public:
  explicit Golden(const std::string& file)
      : f_(SafetensorsFile::open(kData + "/golden/" + file)) {}
  const StTensorInfo& info(const std::string& name) const {
    const StTensorInfo* t = f_->find(name);
    if (!t) throw std::runtime_error("golden tensor missing: " + name);
    return *t;
  }
  std::vector<float> floats(const std::string& name) const { return f_->to_floats(info(name)); }
  bool has(const std::string& name) const { return f_->find(name) != nullptr; }
  // As a host fp32 tensor; 4-d NCHW tensors are permuted to our NHWC.
  Tensor tensor(const std::string& name) const {
    const StTensorInfo& t = info(name);
    std::vector<float> v = floats(name);
    if (t.shape.size() != 4) return Tensor::from_floats(t.shape, v);
    const int64_t n = t.shape[0], c = t.shape[1], h = t.shape[2], w = t.shape[3];
    std::vector<float> o(v.size());
    for (int64_t a = 0; a < n; ++a)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x)
            o[((a * h + y) * w + x) * c + ch] = v[((a * c + ch) * h + y) * w + x];
    return Tensor::from_floats({n, h, w, c}, o);
  }
  std::vector<int64_t> ints(const std::string& name) const {
    const StTensorInfo& t = info(name);
    if (t.dtype != StDType::I64) throw std::runtime_error(name + " is not int64");
    std::vector<int64_t> out((size_t)t.numel());
    std::memcpy(out.data(), f_->data(t), out.size() * sizeof(int64_t));
    return out;
  }

 private:
  std::unique_ptr<SafetensorsFile> f_;
};

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

// max |a - b| over all elements; NaN anywhere counts as infinitely wrong.
double max_abs_diff(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(shape_str(got.shape()), shape_str(ref.shape()));
  if (got.shape() != ref.shape()) return INFINITY;
  std::vector<float> a = got.to_floats(), b = ref.to_floats();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = std::fabs((double)a[i] - b[i]);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

// The checkpoint forms, opened once for the whole binary.
const Checkpoint& checkpoint(const std::string& form) {
  static std::map<std::string, std::unique_ptr<Checkpoint>> cache;
  auto it = cache.find(form);
  if (it != cache.end()) return *it->second;
  std::string path = form == "ldm"        ? kData + "/tiny_sd/tiny_sd.safetensors"
                     : form == "ldm_fp16" ? kData + "/tiny_sd/tiny_sd_fp16.safetensors"
                                          : kData + "/tiny_sd/diffusers";
  return *(cache[form] = Checkpoint::open(path));
}

// Each form's own architecture, as the pipeline loads it: the diffusers folder's config.json files,
// the LDM files' sdgen sidecar (an LDM file's shapes cannot tell heads or GroupNorm groups).
const ModelConfig& config_of(const char* form) { return checkpoint(form).config(); }

struct ModelRun {
  const char* form;  // checkpoint form
  DType dtype;       // compute dtype
  double (*tol)(double);
  Device device = Device::CPU;
  bool plain = false;  // the CPU backend's plain loops instead of its BLAS/OpenMP fast paths
};

std::string run_name(const ModelRun& r) {
  return std::string(r.form) + "_" + dtype_name(r.dtype) +
         (r.device == Device::CPU ? "" : std::string("_") + device_name(r.device)) +
         (r.plain ? "_plain" : "");
}

// gtest (and ctest's test names) print a parameter with this instead of its raw bytes.
void PrintTo(const ModelRun& r, std::ostream* os) { *os << run_name(r); }

const ModelRun kRuns[] = {
    {"ldm", DType::F32, tol_f32},
    {"diffusers", DType::F32, tol_f32},
    {"ldm_fp16", DType::F32, tol_f16},
    {"ldm_fp16", DType::F16, tol_f16},
    {"diffusers", DType::F16, tol_f16},
    {"ldm", DType::F32, tol_f32, Device::CPU, /*plain=*/true},
#ifdef SDGEN_WITH_CUDA
    // The same models on the GPU backend (skipped where no device is present). fp32 there means
    // no TF32, so the fp32 bound holds.
    {"ldm", DType::F32, tol_f32, Device::CUDA},
    {"diffusers", DType::F16, tol_f16, Device::CUDA},
#endif
};

class ModelsGolden : public ::testing::TestWithParam<ModelRun> {
 protected:
  void SetUp() override {
    set_cpu_plain(GetParam().plain);
    if (GetParam().device == Device::CPU) return;
#ifdef SDGEN_WITH_CUDA
    set_cuda_backend_factory(&make_cuda_backend);
#endif
    try {
      backend_for(GetParam().device);
    } catch (const Error& e) {
      GTEST_SKIP() << e.what();
    }
  }
  void TearDown() override { set_cpu_plain(false); }
};

TEST_P(ModelsGolden, ClipLastHiddenState) {
  const ModelRun& r = GetParam();
  Golden g("clip.safetensors");
  ClipTextEncoder clip(checkpoint(r.form), config_of(r.form).clip, r.dtype, r.device);
  const StTensorInfo& ids_info = g.info("input_ids");
  const int prompts = (int)ids_info.shape[0], len = (int)ids_info.shape[1];
  std::vector<int64_t> ids64 = g.ints("input_ids");
  Tensor ref = g.tensor("last_hidden_state");
  // Prompt by prompt (the pipeline's batch of one) and all at once (its batched call).
  for (int p = 0; p < prompts; ++p) {
    std::vector<int> ids(ids64.begin() + (int64_t)p * len, ids64.begin() + (int64_t)(p + 1) * len);
    Tensor want = ref.slice0(p, p + 1);
    double err = max_abs_diff(clip.forward(ids, 1), want);
    double bound = r.tol(max_abs(want.to_floats()));
    EXPECT_LE(err, bound) << "prompt " << p;
    std::printf("[ %s ] clip prompt %d: max|d| %.3g (bound %.3g)\n", run_name(r).c_str(), p, err,
                bound);
  }
  std::vector<int> all(ids64.begin(), ids64.end());
  double err = max_abs_diff(clip.forward(all, prompts), ref);
  EXPECT_LE(err, r.tol(max_abs(ref.to_floats())));
}

TEST_P(ModelsGolden, UNetEps) {
  const ModelRun& r = GetParam();
  Golden g("unet.safetensors");
  UNet unet(checkpoint(r.form), config_of(r.form).unet, r.dtype, r.device);
  for (const std::string c : {"sq", "rect"}) {
    std::vector<int64_t> t64 = g.ints(c + ".t");
    std::vector<float> t(t64.begin(), t64.end());
    // Every intermediate the reference recorded, in forward order, within the same bound: a
    // failure names the first block that departs from diffusers.
    int probed = 0;
    auto probe = [&](const std::string& name, const Tensor& got) {
      Tensor ref = g.tensor(c + "." + name);
      const double e = max_abs_diff(got, ref), b = r.tol(max_abs(ref.to_floats()));
      EXPECT_LE(e, b) << c << " " << name;
      ++probed;
    };
    Tensor eps = unet.forward(g.tensor(c + ".x"), t, g.tensor(c + ".context"), probe);
    EXPECT_EQ(probed, 13);  // time_proj, time_embedding, conv_in, 4 down, mid, 4 up, conv_norm_out
    Tensor want = g.tensor(c + ".eps");
    double err = max_abs_diff(eps, want);
    double bound = r.tol(max_abs(want.to_floats()));
    EXPECT_LE(err, bound) << c;
    std::printf("[ %s ] unet %s: max|d| %.3g (max|ref| %.3g, bound %.3g)\n", run_name(r).c_str(),
                c.c_str(), err, max_abs(want.to_floats()), bound);
  }
}

TEST_P(ModelsGolden, VaeDecode) {
  const ModelRun& r = GetParam();
  Golden g("vae.safetensors");
  VaeDecoder vae(checkpoint(r.form), config_of(r.form).vae, r.dtype, r.device);
  // The golden's z is the pipeline's latent; decode() divides by scaling_factor as diffusers'
  // pipeline does before vae.decode.
  // The intermediates the reference recorded (the full-resolution ones were left out for size).
  int probed = 0;
  Tensor image = vae.decode(g.tensor("z"), [&](const std::string& name, const Tensor& got) {
    if (!g.has(name)) return;
    Tensor ref = g.tensor(name);
    EXPECT_LE(max_abs_diff(got, ref), r.tol(max_abs(ref.to_floats()))) << name;
    ++probed;
  });
  EXPECT_EQ(probed, 5);  // post_quant_conv, decoder.conv_in, decoder.mid_block, up_blocks.0/1
  Tensor want = g.tensor("image");
  double err = max_abs_diff(image, want);
  double bound = r.tol(max_abs(want.to_floats()));
  EXPECT_LE(err, bound);
  std::printf("[ %s ] vae: max|d| %.3g (max|ref| %.3g, bound %.3g)\n", run_name(r).c_str(), err,
              max_abs(want.to_floats()), bound);
}

INSTANTIATE_TEST_SUITE_P(TinySd, ModelsGolden, ::testing::ValuesIn(kRuns),
                         [](const ::testing::TestParamInfo<ModelRun>& info) {
                           return run_name(info.param);
                         });

// Single blocks on quiet inputs (std 1e-3, variance 1e-6: tests/data/golden/blocks.safetensors),
// run as the models built them (so a wrong eps in the config or in the model's wiring shows). A
// GroupNorm divides by sqrt(var + eps): at var 1e-6, eps 1e-6 against 1e-5 scales the normalized
// values by 0.43, an order-1 change, where the whole-model goldens (var ~1) would move by ~5e-6.
// The blocks' outputs are O(1), so the fp32 model bound applies (tol_f32, derived above).
class QuietBlocks : public ::testing::Test {
 protected:
  Golden g{"blocks.safetensors"};
  const Checkpoint& ckpt = checkpoint("diffusers");
  void expect_golden(const Tensor& got, const std::string& name, const char* what) {
    Tensor want = g.tensor(name);
    const double err = max_abs_diff(got, want), bound = tol_f32(max_abs(want.to_floats()));
    EXPECT_LE(err, bound) << what;
    std::printf("[ quiet ] %s: max|d| %.3g (bound %.3g)\n", name.c_str(), err, bound);
  }
};

TEST_F(QuietBlocks, UNetTransformerGroupNormEps) {
  UNet unet(ckpt, config_of("diffusers").unet, DType::F32, Device::CPU);
  expect_golden(unet.down_blocks[0].attentions[0](g.tensor("unet_transformer.x"), g.tensor("unet_transformer.context")),
                "unet_transformer.out",
                "down_blocks.0.attentions.0 (Transformer2DModel): its GroupNorm must use eps 1e-6 "
                "(UNetConfig::transformer_norm_eps), not the resnets' 1e-5");
}

TEST_F(QuietBlocks, UNetResnetGroupNormEps) {
  UNet unet(ckpt, config_of("diffusers").unet, DType::F32, Device::CPU);
  Tensor silu_temb = ops::silu(g.tensor("unet_resnet.temb"));
  expect_golden(unet.down_blocks[0].resnets[0](g.tensor("unet_resnet.x"), silu_temb), "unet_resnet.out",
                "down_blocks.0.resnets.0 (ResnetBlock2D): its GroupNorms must use eps 1e-5 (UNetConfig::norm_eps)");
}

TEST_F(QuietBlocks, VaeResnetGroupNormEps) {
  VaeDecoder vae(ckpt, config_of("diffusers").vae, DType::F32, Device::CPU);
  expect_golden(vae.mid_block.resnets[0](g.tensor("vae_resnet.x")), "vae_resnet.out",
                "decoder.mid_block.resnets.0 (ResnetBlock2D): the VAE's GroupNorms must use eps 1e-6 (VaeConfig::norm_eps)");
}

// The models reject inputs of the wrong shape with a usage error instead of computing garbage.
TEST(Models, RejectBadShapes) {
  const ModelConfig& c = config_of("diffusers");
  UNet unet(checkpoint("diffusers"), c.unet, DType::F32, Device::CPU);
  Tensor ctx = Tensor::zeros({1, 77, c.unet.cross_attention_dim});
  EXPECT_THROW(unet.forward(Tensor::zeros({1, 12, 12, 4}), {1.0f}, ctx), Error);  // not /8
  EXPECT_THROW(unet.forward(Tensor::zeros({1, 16, 16, 3}), {1.0f}, ctx), Error);  // channels
  VaeDecoder vae(checkpoint("diffusers"), c.vae, DType::F32, Device::CPU);
  EXPECT_THROW(vae.decode(Tensor::zeros({1, 8, 8, 3})), Error);
}

}  // namespace
