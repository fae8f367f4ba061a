// End to end in the SIMT emulator: the whole text-to-image pipeline on Device::CUDA — the CUDA
// backend's host code, its kernels and its cuBLAS/cuDNN call sites, all executed by the emulator —
// against diffusers' images (tests/data/golden/pipeline.safetensors, run0: "a photo of a cat",
// seed 42, 5 DDIM steps, guidance 7.5, batch 2, 64×64), in fp32 and mixed fp16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "../image_goldens.h"
#include "../test_helpers.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

using namespace sdgen;

namespace {

using Agreement = test_helpers::ImageDiff;
Agreement compare(const std::vector<uint8_t>& ours, const uint8_t* ref) {
  return test_helpers::compare_u8(ours.data(), ref, ours.size());
}

// The latents after every unit (record_unit_latents) against the reference's ([units, ...] back to
// back): per unit, the largest difference within 2e-5 · max(1, max |ref|). Prints and returns the
// worst such ratio.
float expect_unit_latents(const GeneratedBatch& out, const std::vector<float>& ref, const std::string& what) {
  const size_t n = out.latents.size();
  EXPECT_EQ(ref.size(), out.unit_latents.size() * n) << what;
  if (ref.size() != out.unit_latents.size() * n) return INFINITY;
  float worst_rel = 0;
  for (size_t u = 0; u < out.unit_latents.size(); ++u) {
    float worst = 0, scale = 1;
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::fabs(out.unit_latents[u][i] - ref[u * n + i]));
      scale = std::max(scale, std::fabs(ref[u * n + i]));
    }
    EXPECT_LE(worst, 2e-5f * scale) << what << " unit " << u;
    worst_rel = std::max(worst_rel, worst / scale);
  }
  std::printf("%s emulated: %zu units, max|d|/max(1,|ref|) %.3g\n", what.c_str(), out.unit_latents.size(), worst_rel);
  return worst_rel;
}

// run0 of the pipeline golden on the emulated CUDA backend, the step replayed as a CUDA graph or
// run eagerly.
GeneratedBatch run_emulated(DType dtype, bool graphs) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string data = SDGEN_TEST_DATA;
  Pipeline pipe(data + "/tiny_sd/tiny_sd.safetensors", dtype, Device::CUDA);
  GenerateParams p;
  p.prompt = "a photo of a cat";
  p.batch = 2;
  p.steps = 5;
  p.guidance = 7.5f;
  p.seed = 42;
  p.width = p.height = 64;
  p.cuda_graphs = graphs;
  return pipe.generate(p);
}

std::vector<Agreement> against_golden(const GeneratedBatch& out, const char* what) {
  auto golden = SafetensorsFile::open(std::string(SDGEN_TEST_DATA) + "/golden/pipeline.safetensors");
  const StTensorInfo* ref = golden->find("run0.image_uint8");
  EXPECT_NE(ref, nullptr);
  std::vector<Agreement> result;
  for (size_t b = 0; b < out.images.size(); ++b) {
    result.push_back(compare(out.images[b], golden->data(*ref) + b * out.images[b].size()));
    std::printf("%s image %zu: %.2f%% exact, %.2f%% within ±1, worst %d\n", what, b, 100 * result.back().exact,
                100 * result.back().within1, result.back().worst);
  }
  return result;
}

// Replaying the recorded step must compute exactly what running it does.
void expect_same_with_and_without_graphs(const GeneratedBatch& on, const GeneratedBatch& off) {
  EXPECT_EQ(on.latents, off.latents) << "the graph replay and the eager steps differ";
  EXPECT_EQ(on.images, off.images);
  // The CLIP token table alone is 49,408 × 8 values (0.8 MB in fp16): the pool held at least that.
  EXPECT_GT(on.peak_device_bytes, 500000u);
}

}  // namespace

// fp32: as the CPU backend's rule (tests/test_pipeline.cpp, kImageF32): float32 up to summation
// order, so a channel differs only by a rounding flip: ≥ 99.7% exact, never 2 levels off.
TEST(CudaEmulatedPipeline, Fp32MatchesDiffusers) {
  const GeneratedBatch on = run_emulated(DType::F32, true), off = run_emulated(DType::F32, false);
  expect_same_with_and_without_graphs(on, off);
  for (const Agreement& a : against_golden(on, "fp32 emulated")) {
    EXPECT_GE(a.exact, 0.997);
    EXPECT_LE(a.worst, 1);
  }
}

// fp16 storage rounds every activation to 11 bits, and here the GEMMs and convolutions also round
// their outputs to fp16 (the CPU backend's fp16 keeps fp32 inside an op): the CPU's derivation
// (tests/test_pipeline.cpp, kImageF16: ≥ 60% exact, ≥ 99% within ±1, worst ≤ 6) holds with the
// margin measured below; a structural error moves most channels by tens of levels.
TEST(CudaEmulatedPipeline, Fp16CloseToDiffusers) {
  const GeneratedBatch on = run_emulated(DType::F16, true), off = run_emulated(DType::F16, false);
  expect_same_with_and_without_graphs(on, off);
  for (const Agreement& a : against_golden(on, "fp16 emulated")) {
    EXPECT_GE(a.exact, 0.60);
    EXPECT_GE(a.within1, 0.99);
    EXPECT_LE(a.worst, 6);
  }
}

// bf16 against diffusers' own bf16 run (tests/data/golden/bf16.safetensors) and its fp32 images,
// with the rule derived in tests/test_pipeline.cpp (kBf16VsBf16, kBf16VsFp32: from the reference's
// own spread). Here the GEMMs and convolutions also round their outputs to bf16 (as the fp16 GPU
// path does), which the reference does too; attention runs the FMA kernel (no bf16 mma yet).
TEST(CudaEmulatedPipeline, Bf16CloseToDiffusersBf16) {
  const GeneratedBatch on = run_emulated(DType::BF16, true), off = run_emulated(DType::BF16, false);
  expect_same_with_and_without_graphs(on, off);
  auto bf16 = SafetensorsFile::open(std::string(SDGEN_TEST_DATA) + "/golden/bf16.safetensors");
  auto fp32 = SafetensorsFile::open(std::string(SDGEN_TEST_DATA) + "/golden/pipeline.safetensors");
  const StTensorInfo* r16 = bf16->find("run0.image_uint8");
  const StTensorInfo* r32 = fp32->find("run0.image_uint8");
  ASSERT_NE(r16, nullptr);
  ASSERT_NE(r32, nullptr);
  ASSERT_EQ(on.images.size(), 2u);
  for (size_t b = 0; b < on.images.size(); ++b) {
    const size_t n = on.images[b].size();
    // {k1, share within ±k1, k2, share within ±k2, worst} as tests/test_pipeline.cpp's SpreadRule.
    struct { const uint8_t* ref; int k1; double s1; int k2; double s2; int worst; const char* what; } refs[] = {
        {bf16->data(*r16) + b * n, 8, 0.73, 16, 0.96, 32, "vs diffusers bf16"},
        {fp32->data(*r32) + b * n, 4, 0.73, 8, 0.96, 32, "vs diffusers fp32"}};
    for (const auto& r : refs) {
      size_t in1 = 0, in2 = 0;
      int worst = 0;
      for (size_t i = 0; i < n; ++i) {
        const int d = std::abs((int)on.images[b][i] - (int)r.ref[i]);
        in1 += d <= r.k1, in2 += d <= r.k2, worst = std::max(worst, d);
      }
      std::printf("bf16 emulated image %zu %s: %.2f%% within ±%d, %.2f%% within ±%d, worst %d\n", b, r.what,
                  100.0 * in1 / n, r.k1, 100.0 * in2 / n, r.k2, worst);
      EXPECT_GE((double)in1 / n, r.s1) << r.what;
      EXPECT_GE((double)in2 / n, r.s2) << r.what;
      EXPECT_LE(worst, r.worst) << r.what;
    }
  }
}

// The recorded step is kept between generate() calls with the same shapes and settings: a later
// call refills the noise, the context (its hidden states and every cross-attention's keys and
// values) and the step index in place and replays the same graph. A buffer left stale shows: a
// new prompt that does not give what a fresh pipeline gives for it, a new seed that gives the
// first call's images, or the first call's settings that no longer give its images.
TEST(CudaEmulatedPipeline, StepGraphReusedAcrossCalls) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string model = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";
  GenerateParams p;
  p.prompt = "a red fox in snow";
  p.steps = 3;
  p.seed = 42;
  p.width = p.height = 64;
  const GeneratedBatch fresh_fox = Pipeline(model, DType::F32, Device::CUDA).generate(p);
  Pipeline pipe(model, DType::F32, Device::CUDA);
  p.prompt = "a photo of a cat";
  const GeneratedBatch first = pipe.generate(p);
  EXPECT_FALSE(first.step_graph_reused);
  p.prompt = "a red fox in snow";  // context refilled
  const GeneratedBatch fox = pipe.generate(p);
  EXPECT_EQ(fox.latents, fresh_fox.latents) << "a replay after refilling the context differs from a fresh run";
  p.prompt = "a photo of a cat";
  p.seed = 7;  // noise refilled
  const GeneratedBatch seed7 = pipe.generate(p);
  p.seed = 42;  // back to the first call: the same images, bit for bit
  const GeneratedBatch again = pipe.generate(p);
  EXPECT_TRUE(fox.step_graph_reused && seed7.step_graph_reused && again.step_graph_reused);
  EXPECT_EQ(pipe.step_graphs_recorded(), 1);
  EXPECT_NE(seed7.images, first.images) << "the noise was not refilled";
  EXPECT_EQ(again.latents, first.latents) << "a replay from a refilled state differs from the first call";
  EXPECT_EQ(again.images, first.images);
  p.steps = 2;  // another schedule: a new recording
  const GeneratedBatch two = pipe.generate(p);
  EXPECT_FALSE(two.step_graph_reused);
  EXPECT_EQ(pipe.step_graphs_recorded(), 2);
}

// The samplers other than DDIM run as plans (src/sampler/sampler.h) through ops::sampler_step and
// ops::scale_repeat_batch on the device: each sampler kind (ancestral noise, Heun's two units per
// step and its two state buffers, PLMS's four, UniPC's corrector, the SDE's noise with Karras
// sigmas) against diffusers' latents after every unit (tests/data/golden/samplers.safetensors),
// with the step replayed as a graph, which must equal running it eagerly bit for bit. Bound as on
// the CPU (tests/test_samplers.cpp, kPipeLatentRel): 2e-5 of max(1, max|ref|).
TEST(CudaEmulatedPipeline, SamplersMatchDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string data = SDGEN_TEST_DATA;
  auto golden = SafetensorsFile::open(data + "/golden/samplers.safetensors");
  Pipeline pipe(data + "/tiny_sd/diffusers", DType::F32, Device::CUDA);
  const std::pair<const char*, const char*> runs[] = {
      {"euler_a", "default"}, {"heun", "karras"}, {"pndm", "default"}, {"unipc", "default"}, {"dpmpp_2m_sde", "karras"}};
  for (const auto& [sampler, schedule] : runs) {
    const std::string key = std::string(sampler) + "|" + schedule;
    SCOPED_TRACE(key);
    GenerateParams p;  // the reference script's call (make_sampler_goldens.py, PIPE)
    p.prompt = "a red fox in the snow";
    p.negative_prompt = "blurry";
    p.steps = 10;
    p.guidance = 7.5f;
    p.width = p.height = 64;
    p.batch = 2;
    p.seed = 31;
    p.sampler = parse_sampler_options(sampler, schedule);
    p.record_unit_latents = true;
    const GeneratedBatch on = pipe.generate(p);
    p.cuda_graphs = false;
    const GeneratedBatch off = pipe.generate(p);
    EXPECT_EQ(on.unit_latents, off.unit_latents) << "the graph replay and the eager steps differ";
    expect_unit_latents(on, golden->to_floats(*golden->find(key + ".latents_per_unit")), key);
  }
}

// v-prediction (tests/test_v_prediction.cpp on the CPU, every sampler): the tiny model read as a v
// model (--prediction-type), its plan on the device with PNDM, whose conversion differs from the
// others', against diffusers' latents after every unit (tests/data/golden/vpred.safetensors); and
// mixed fp16 Euler by the fp16 image rule. (Graph replay against eager steps: SamplersMatchDiffusers.)
TEST(CudaEmulatedPipeline, VPredictionMatchesDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string data = SDGEN_TEST_DATA;
  auto golden = SafetensorsFile::open(data + "/golden/vpred.safetensors");
  auto params = [](const char* sampler) {
    GenerateParams p;  // the reference script's call (make_vpred_goldens.py, PIPE)
    p.prompt = "a lighthouse at dusk";
    p.negative_prompt = "fog";
    p.steps = 6;
    p.guidance = 6.0f;
    p.width = 128;
    p.height = 64;
    p.batch = 2;
    p.seed = 57;
    p.sampler = parse_sampler_options(sampler);
    p.prediction_type = "v_prediction";
    return p;
  };
  Pipeline pipe(data + "/tiny_sd/diffusers", DType::F32, Device::CUDA);
  GenerateParams p = params("pndm");
  p.record_unit_latents = true;
  const GeneratedBatch on = pipe.generate(p);
  expect_unit_latents(on, golden->to_floats(*golden->find("pipe.pndm|default.latents_per_unit")), "v-prediction pndm");
  Pipeline half(data + "/tiny_sd/diffusers", DType::F16, Device::CUDA);
  const GeneratedBatch out = half.generate(params("euler"));
  const StTensorInfo* ref = golden->find("pipe.euler|default.image_uint8");
  ASSERT_NE(ref, nullptr);
  for (size_t b = 0; b < out.images.size(); ++b) {
    const Agreement a = compare(out.images[b], golden->data(*ref) + b * out.images[b].size());
    std::printf("fp16 v-prediction euler emulated image %zu: %.2f%% exact, %.2f%% within ±1, worst %d\n", b,
                100 * a.exact, 100 * a.within1, a.worst);
    EXPECT_GE(a.exact, 0.60);
    EXPECT_GE(a.within1, 0.99);
    EXPECT_LE(a.worst, 6);
  }
}

// fp16 with a sigma-space sampler: the UNet input x/√(σ²+1) is cast to fp16 on the way in and ε
// read back from fp16; the latents and the plan's arithmetic stay fp32. Held to the fp16 image
// rule of Fp16CloseToDiffusers against diffusers' fp32 images.
TEST(CudaEmulatedPipeline, Fp16EulerAncestralCloseToDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string data = SDGEN_TEST_DATA;
  auto golden = SafetensorsFile::open(data + "/golden/samplers.safetensors");
  Pipeline pipe(data + "/tiny_sd/diffusers", DType::F16, Device::CUDA);
  GenerateParams p;
  p.prompt = "a red fox in the snow";
  p.negative_prompt = "blurry";
  p.steps = 10;
  p.width = p.height = 64;
  p.batch = 2;
  p.seed = 31;
  p.sampler = parse_sampler_options("euler_a");
  const GeneratedBatch out = pipe.generate(p);
  const StTensorInfo* ref = golden->find("euler_a|default.image_uint8");
  ASSERT_NE(ref, nullptr);
  for (size_t b = 0; b < out.images.size(); ++b) {
    const Agreement a = compare(out.images[b], golden->data(*ref) + b * out.images[b].size());
    std::printf("fp16 euler_a emulated image %zu: %.2f%% exact, %.2f%% within ±1, worst %d\n", b, 100 * a.exact,
                100 * a.within1, a.worst);
    EXPECT_GE(a.exact, 0.60);
    EXPECT_GE(a.within1, 0.99);
    EXPECT_LE(a.worst, 6);
  }
}

// A kept step graph of a stochastic sampler replays with the new seed's step noise refilled, and
// another sampler records a graph of its own.
TEST(CudaEmulatedPipeline, StepGraphOfAStochasticSamplerRefillsItsNoise) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string model = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";
  GenerateParams p;
  p.prompt = "a photo of a cat";
  p.steps = 3;
  p.seed = 9;
  p.width = p.height = 64;
  p.sampler = parse_sampler_options("euler_a");
  const GeneratedBatch fresh9 = Pipeline(model, DType::F32, Device::CUDA).generate(p);
  Pipeline pipe(model, DType::F32, Device::CUDA);
  p.seed = 8;
  const GeneratedBatch first = pipe.generate(p);
  p.seed = 9;
  const GeneratedBatch replay9 = pipe.generate(p);
  EXPECT_TRUE(replay9.step_graph_reused);
  EXPECT_EQ(replay9.latents, fresh9.latents) << "the step noise of the new seed was not refilled";
  EXPECT_NE(first.latents, replay9.latents);
  p.sampler = parse_sampler_options("dpmpp_2m");
  const GeneratedBatch other = pipe.generate(p);
  EXPECT_FALSE(other.step_graph_reused);
  EXPECT_EQ(pipe.step_graphs_recorded(), 2);
}

// A prompt of 100 tokens is two chunks, 154 keys for every cross-attention (text/conditioning.h),
// against a negative prompt padded to the same two chunks. The emulated kernels take that context
// length, the step recorded for a 77-key context is not replayed for it (the graph key holds the
// context length), and the images are the CPU backend's within the fp32 rule above (both
// backends compute float32 up to summation order).
TEST(CudaEmulatedPipeline, LongPromptContext) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string model = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";
  static const char* kWords[] = {"cat", "dog", "red", "blue", "house", "tree", "sky", "river"};
  GenerateParams p;
  for (int i = 0; i < 100; ++i) p.prompt += (i ? " " : "") + std::string(kWords[(i * 3 + i / 8) % 8]);
  p.negative_prompt = "blurry";
  p.steps = 3;
  p.seed = 5;
  p.width = p.height = 64;
  const GeneratedBatch cpu = Pipeline(model, DType::F32, Device::CPU).generate(p);
  Pipeline pipe(model, DType::F32, Device::CUDA);
  GenerateParams short_prompt = p;
  short_prompt.prompt = "a photo of a cat";
  pipe.generate(short_prompt);
  const GeneratedBatch emu = pipe.generate(p);
  EXPECT_FALSE(emu.step_graph_reused);
  EXPECT_EQ(pipe.step_graphs_recorded(), 2);
  ASSERT_EQ(emu.images.size(), cpu.images.size());
  const Agreement a = compare(emu.images[0], cpu.images[0].data());
  std::printf("154-key context, emulated vs CPU: %.2f%% exact, worst %d\n", 100 * a.exact, a.worst);
  EXPECT_GE(a.exact, 0.997);
  EXPECT_LE(a.worst, 1);
}

// SD 2.x (tests/data/tiny_sd2, tests/test_sd2.cpp): heads per level (head widths 8 and 4), linear
// proj_in/proj_out, the gelu text encoder and "!" padding on the CUDA backend. fp32 from the folder,
// DDIM predicting epsilon, v, and v with guidance rescale 0.7, one pipeline: the latents after every
// unit within 2e-5 of diffusers' and the images within ±1.
// Mixed fp16 from the fp16 single file (OpenCLIP names), v-prediction DDIM: the step replayed as a
// graph equals the eager steps bit for bit, and the images keep the bound tests/test_sd2.cpp derives
// from diffusers' own fp16 spread of that run (fp16_spread in the golden).
TEST(CudaEmulatedPipeline, Sd2MatchesDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string data = SDGEN_TEST_DATA;
  auto golden = SafetensorsFile::open(data + "/golden/sd2.safetensors");
  const nlohmann::json runs = nlohmann::json::parse(golden->metadata().at("runs"));
  auto run_of = [&](const std::string& key) {
    for (const auto& r : runs)
      if (r["key"] == key) return r;
    ADD_FAILURE() << "no run " << key;
    return nlohmann::json();
  };
  auto params = [](const nlohmann::json& r) { return image_goldens::sd2_run_params(r); };
  Pipeline pipe(data + "/tiny_sd2/diffusers", DType::F32, Device::CUDA);
  // v_ddim after eps_ddim: the same recorded step, replayed with the v plan's tables refilled (a
  // replay that kept them would run epsilon's). v_ddim_rescale: guidance rescale's per-sample
  // reductions in their kernel.
  for (const char* key : {"eps_ddim", "v_ddim", "v_ddim_rescale"}) {
    GenerateParams p = params(run_of(key));
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    expect_unit_latents(out, golden->to_floats(*golden->find(std::string(key) + ".latents_per_unit")),
                        std::string("SD 2 ") + key + " fp32");
    const StTensorInfo* ref = golden->find(std::string(key) + ".image_uint8");
    ASSERT_NE(ref, nullptr);
    for (size_t b = 0; b < out.images.size(); ++b)
      EXPECT_GE(compare(out.images[b], golden->data(*ref) + b * out.images[b].size()).within1, 0.999) << key << b;
  }

  const nlohmann::json v = run_of("v_ddim");
  Pipeline half(data + "/tiny_sd2/tiny_sd2.safetensors", DType::F16, Device::CUDA);
  const GeneratedBatch on = image_goldens::expect_graphs_on_off_equal(half, params(v));
  const nlohmann::json& s = v["fp16_spread"];
  const double within1 = s["within1"], exact = s["exact"];
  const int worst = s["worst"];
  const bool sd1_rule = within1 >= 0.99 && exact >= 0.60 && worst <= 6;
  const StTensorInfo* vref = golden->find("v_ddim.image_uint8");
  ASSERT_NE(vref, nullptr);
  for (size_t b = 0; b < on.images.size(); ++b) {
    const Agreement a = compare(on.images[b], golden->data(*vref) + b * on.images[b].size());
    std::printf("SD 2 v ddim emulated fp16 image %zu: %.2f%% exact, %.2f%% within ±1, worst %d\n", b, 100 * a.exact,
                100 * a.within1, a.worst);
    EXPECT_GE(a.within1, sd1_rule ? 0.99 : 1 - 2 * (1 - within1));
    EXPECT_GE(a.exact, sd1_rule ? 0.60 : std::max(0.0, 1 - 2 * (1 - exact)));
    EXPECT_LE(a.worst, sd1_rule ? 6 : 2 * worst);
  }
}

// SDXL on the emulated CUDA backend (tests/test_sdxl.cpp has the CPU side): the added conditioning
// (pooled text and size ids through add_embedding, made once per generation and refilled on a
// replay), two text encoders, transformer depths 2 and 3. fp32 from the folder: micro-conditioning
// with negative sizes of their own, then the zeros run replaying the recorded step (another batch:
// recorded anew), the defaults run (the same shapes: replayed with its own added conditioning) and
// the second encoder's own texts (prompt_2, negative_prompt_2);
// the latents after every unit within 2e-5 of diffusers' and the images within ±1. Mixed fp16 from the
// LDM single file (the VAE upcast to fp32, force_upcast): graphs on and off bit for bit, within SD v1's
// fp16 rule of diffusers' fp32 images. With --vae-tiny, the tiny TAESD's images.
TEST(CudaEmulatedPipeline, SdxlMatchesDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string data = SDGEN_TEST_DATA;
  auto golden = SafetensorsFile::open(data + "/golden/sdxl.safetensors");
  const nlohmann::json runs = nlohmann::json::parse(golden->metadata().at("runs"));
  auto params = [](const nlohmann::json& r) { return image_goldens::sdxl_run_params(r); };
  Pipeline pipe(data + "/tiny_sdxl/diffusers", DType::F32, Device::CUDA);
  int replayed = 0;
  for (const auto& r : runs) {
    const std::string key = r["key"];
    GenerateParams p = params(r);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    replayed += out.step_graph_reused;
    expect_unit_latents(out, golden->to_floats(*golden->find(key + ".latents_per_unit")), "SDXL " + key + " fp32");
    const StTensorInfo* ref = golden->find(key + ".image_uint8");
    ASSERT_NE(ref, nullptr);
    for (size_t b = 0; b < out.images.size(); ++b)
      EXPECT_GE(compare(out.images[b], golden->data(*ref) + b * out.images[b].size()).within1, 0.999) << key << b;
  }
  EXPECT_EQ(replayed, 0);  // each run has its own sampler: recorded anew

  Pipeline half(data + "/tiny_sdxl/tiny_sdxl.safetensors", DType::F16, Device::CUDA);
  const nlohmann::json& r = runs[2];  // euler_a_default, batch 2
  GenerateParams hp = params(r);
  const GeneratedBatch on = half.generate(hp);
  // The same shapes and settings replay the recorded step with this call's added conditioning
  // refilled: the micro-conditioning run's ids at this run's batch give other latents.
  GenerateParams other = hp;
  other.size_cond.original_h = 256, other.size_cond.original_w = 512;
  const GeneratedBatch replay = half.generate(other);
  EXPECT_TRUE(replay.step_graph_reused);
  EXPECT_NE(replay.latents, on.latents);
  hp.cuda_graphs = false;
  const GeneratedBatch off = half.generate(hp);
  EXPECT_EQ(on.latents, off.latents);
  EXPECT_EQ(on.images, off.images);
  other.cuda_graphs = false;
  EXPECT_EQ(half.generate(other).latents, replay.latents);
  const StTensorInfo* ref = golden->find(r["key"].get<std::string>() + ".image_uint8");
  ASSERT_NE(ref, nullptr);
  for (size_t b = 0; b < on.images.size(); ++b) {
    const Agreement a = compare(on.images[b], golden->data(*ref) + b * on.images[b].size());
    std::printf("SDXL euler a emulated fp16 image %zu: %.2f%% exact, %.2f%% within ±1, worst %d\n", b, 100 * a.exact,
                100 * a.within1, a.worst);
    EXPECT_GE(a.within1, 0.99);
    EXPECT_GE(a.exact, 0.60);
    EXPECT_LE(a.worst, 6);
  }

  // --vae-tiny: the tiny TAESD decodes the same run's latents (fp32, the folder) as diffusers'
  // pipeline with it as the VAE does (the golden's taesd images).
  ModelOptions o;
  o.vae_tiny = data + "/tiny_taesd";
  Pipeline tiny(data + "/tiny_sdxl/diffusers", DType::F32, Device::CUDA, nullptr, o);
  const GeneratedBatch t = tiny.generate(params(r));
  const StTensorInfo* tref = golden->find("taesd.image_uint8");
  ASSERT_NE(tref, nullptr);
  ASSERT_EQ(t.images.size(), 2u);
  for (size_t b = 0; b < t.images.size(); ++b)
    EXPECT_GE(compare(t.images[b], golden->data(*tref) + b * t.images[b].size()).within1, 0.999) << "taesd " << b;
}

// Pictures in with SD 2.x and SDXL on the emulated CUDA backend (tests/test_sd2.cpp and
// tests/test_sdxl.cpp have the CPU side): SD 2's v-prediction img2img and inpainting (the pictures
// metadata), SDXL's img2img and inpainting (the VAE encoding in fp32, force_upcast), fp32 from the
// folders; the latents after every unit within 2e-5 of diffusers' and the images within ±1.
TEST(CudaEmulatedPipeline, Sd2AndSdxlPicturesMatchDiffusers) {
  set_cuda_backend_factory(&make_cuda_backend);
  const std::string data = SDGEN_TEST_DATA, root = data + "/../..";  // the pictures' paths are the tree's
  auto run = [&](Pipeline& pipe, const image_goldens::Golden& g, const nlohmann::json& r, GenerateParams p) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    image_goldens::set_pictures(p, root, r);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    image_goldens::expect_unit_latents(g, r, out, 2e-5f, ("emulated " + key).c_str());
    image_goldens::expect_images(g, out, key, 0.999, 0.0, 255);
  };
  const image_goldens::Golden sd2(data + "/golden/sd2.safetensors");
  Pipeline sd2_pipe(data + "/tiny_sd2/diffusers", DType::F32, Device::CUDA);
  for (const auto& r : nlohmann::json::parse(sd2.f->metadata().at("pictures")))
    run(sd2_pipe, sd2, r, image_goldens::sd2_run_params(r));
  const image_goldens::Golden xl(data + "/golden/sdxl.safetensors");
  Pipeline xl_pipe(data + "/tiny_sdxl/diffusers", DType::F32, Device::CUDA);
  for (const char* what : {"img2img", "inpaint"}) {
    const nlohmann::json r = nlohmann::json::parse(xl.f->metadata().at(what));
    run(xl_pipe, xl, r, image_goldens::sdxl_run_params(r));
  }
}
