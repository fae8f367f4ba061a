// Live previews on the emulated CUDA backend: each preview's estimate is copied to the host without
// waiting (Backend::download_async) and shown once the next unit is queued, so the copy must hold
// its own unit's values although the next unit rewrites the estimate's buffer. Against the CPU
// backend's previews of the same run (the numeric truth; tests/test_previews.cpp holds those to
// the plan's x0), for the latents and for TAESD's pictures; the images unchanged by previews.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "../test_helpers.h"
#include "pipeline/model_options.h"
#include "pipeline/pipeline.h"
#include "sampler/sampler.h"
#include "sdgen/backend.h"

using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;

GenerateParams params() {
  GenerateParams p;
  p.prompt = "a red house";
  p.steps = 6;
  p.width = 128;
  p.height = 64;
  p.batch = 2;
  p.seed = 9;
  p.sampler = parse_sampler_options("euler");
  return p;
}

struct Previews {
  std::vector<int> at;
  std::vector<std::vector<float>> latents;
  std::vector<std::vector<RgbImage>> pictures;
  GeneratedBatch out;
};

Previews run(Device device, bool taesd, int every) {
  if (device == Device::CUDA) set_cuda_backend_factory(&make_cuda_backend);
  ModelOptions o;
  if (taesd) o.vae_tiny = kData + "/tiny_taesd";
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, device, nullptr, o);
  Previews r;
  GenerateParams p = params();
  p.preview_every = every;
  p.preview = [&](int done, int, const std::vector<float>& x0, int, int, int) {
    r.at.push_back(done);
    r.latents.push_back(x0);
  };
  if (taesd)
    p.preview_pictures = [&](int done, int, const std::vector<RgbImage>& pictures) {
      r.at.push_back(done);
      r.pictures.push_back(pictures);
    };
  r.out = pipe.generate(p);
  return r;
}

}  // namespace

TEST(CudaEmulatedPreviews, EstimatesEqualTheCpusAndImagesAreUnchanged) {
  const Previews cpu = run(Device::CPU, false, 2), gpu = run(Device::CUDA, false, 2);
  ASSERT_EQ(gpu.at, (std::vector<int>{2, 4}));
  ASSERT_EQ(cpu.at, gpu.at);
  for (size_t k = 0; k < gpu.latents.size(); ++k) {
    ASSERT_EQ(gpu.latents[k].size(), cpu.latents[k].size());
    float worst = 0;
    for (size_t i = 0; i < gpu.latents[k].size(); ++i)
      worst = std::max(worst, std::fabs(gpu.latents[k][i] - cpu.latents[k][i]) / std::max(1.0f, std::fabs(cpu.latents[k][i])));
    // Summation order alone: ~1e-6. The next unit's estimate (what a copy read too late would hold)
    // differs by more than 1e-1.
    EXPECT_LE(worst, 1e-4f) << "preview after unit " << gpu.at[k];
  }
  GenerateParams p = params();
  set_cuda_backend_factory(&make_cuda_backend);
  const GeneratedBatch plain = Pipeline(kData + "/tiny_sd/diffusers", DType::F32, Device::CUDA).generate(p);
  EXPECT_EQ(gpu.out.images, plain.images);
  EXPECT_EQ(gpu.out.latents, plain.latents);
}

TEST(CudaEmulatedPreviews, TaesdPicturesEqualTheCpus) {
  const Previews cpu = run(Device::CPU, true, 1), gpu = run(Device::CUDA, true, 1);
  ASSERT_EQ(gpu.at, (std::vector<int>{1, 2, 3, 4, 5}));
  ASSERT_EQ(cpu.at, gpu.at);
  EXPECT_TRUE(gpu.latents.empty());
  for (size_t k = 0; k < gpu.pictures.size(); ++k) {
    ASSERT_EQ(gpu.pictures[k].size(), 2u);
    for (size_t b = 0; b < 2; ++b) {
      const std::vector<uint8_t>& g = gpu.pictures[k][b].pixels;
      const std::vector<uint8_t>& c = cpu.pictures[k][b].pixels;
      ASSERT_EQ(g.size(), c.size());
      EXPECT_GE(test_helpers::compare_u8(g.data(), c.data(), c.size()).within1, 0.999) << gpu.at[k] << " " << b;
    }
  }
}
