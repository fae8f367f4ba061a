// SDXL base against diffusers 0.42.1 / transformers 5 (tests/reference/make_sdxl_goldens.py): the tiny
// SDXL model (tests/data/tiny_sdxl: CLIP ViT-L and OpenCLIP bigG in small, both to their penultimate
// layer, a pooled and projected end token, the six size ids as added conditioning, three UNet levels
// with 0/2/3 transformer blocks, the VAE's 0.13025 and force_upcast) as a diffusers folder and as an
// LDM single file in SDXL's original names, its conditioning, and whole runs with micro-conditioning.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "image_goldens.h"
#include "io/checkpoint.h"
#include "io/image_read.h"
#include "pipeline/pipeline.h"
#include "sdgen/half.h"
#include "text/clip.h"
#include "text/conditioning.h"
#include "text/tokenizer.h"
#include "test_helpers.h"
#include "torch_save_twin.h"

using namespace sdgen;
using image_goldens::Golden;

namespace {
const std::string kData = SDGEN_TEST_DATA;
const std::string kFolder = kData + "/tiny_sdxl/diffusers";
const std::string kLdm = kData + "/tiny_sdxl/tiny_sdxl.safetensors";  // fp16, SDXL's original names

const Golden& golden() {
  static const Golden g(kData + "/golden/sdxl.safetensors");
  return g;
}

GenerateParams run_params(const nlohmann::json& r) { return image_goldens::sdxl_run_params(r); }

// Images against the golden's by the pixel rule (image_goldens::expect_images).
void expect_images(const GeneratedBatch& out, const std::string& key, double within1, double exact, int worst) {
  image_goldens::expect_images(golden(), out, key, within1, exact, worst);
}

std::vector<int> golden_ids(const std::string& key) {
  const StTensorInfo* t = golden().f->find(key);
  EXPECT_NE(t, nullptr) << key;
  if (!t) return {};
  std::vector<int32_t> ids((size_t)t->numel());
  golden().f->copy_bytes(*t, ids.data());
  return {ids.begin(), ids.end()};
}
}  // namespace

// What makes the model SDXL, read from each form: the folder's configs, the LDM file's shapes and
// its sidecar (heads and groups only).
TEST(Sdxl, ConfigFromFolderAndSingleFile) {
  for (const std::string& path : {kFolder, kLdm}) {
    SCOPED_TRACE(path);
    const ModelConfig c = Checkpoint::open(path)->config();
    ASSERT_TRUE(c.sdxl());
    EXPECT_EQ(c.unet.block_channels, (std::vector<int>{8, 16, 16}));
    EXPECT_EQ(c.unet.down_attention, (std::vector<bool>{false, true, true}));
    EXPECT_EQ(c.unet.level_heads, (std::vector<int>{1, 2, 4}));
    EXPECT_EQ(c.unet.depth_at(1), 2);
    EXPECT_EQ(c.unet.depth_at(2), 3);
    EXPECT_EQ(c.unet.cross_attention_dim, 24);
    EXPECT_EQ(c.unet.addition_time_embed_dim, 4);
    EXPECT_EQ(c.unet.addition_embed_input_dim, 36);
    EXPECT_TRUE(c.clip.penultimate && c.clip2.penultimate);
    EXPECT_EQ(c.clip.act, "quick_gelu");
    EXPECT_EQ(c.clip.hidden, 8);
    EXPECT_EQ(c.clip2.act, "gelu");
    EXPECT_EQ(c.clip2.hidden, 16);
    EXPECT_EQ(c.clip2.layers, 3);  // all of them: the pooled output is the last layer's
    EXPECT_EQ(c.clip2.projection_dim, 12);
    EXPECT_EQ(c.tokenizer.pad_token, "<|endoftext|>");
    EXPECT_EQ(c.tokenizer2.pad_token, "!");
    EXPECT_FLOAT_EQ(c.vae.scaling_factor, 0.13025f);
    EXPECT_TRUE(c.vae.force_upcast);
    EXPECT_TRUE(c.force_zeros_for_empty_prompt);
  }
}

// The LDM file's tensors are the folder's (both hold the same fp16 values): CLIP ViT-L under
// conditioner.embedders.0, OpenCLIP bigG's packed q/k/v split by rows and its text_projection
// transposed, label_emb as add_embedding; every canonical tensor, none missing.
TEST(Sdxl, SingleFileHoldsTheFolderWeights) {
  const auto folder = Checkpoint::open(kFolder);
  const auto ldm = Checkpoint::open(kLdm);
  int compared = 0, projections = 0, added = 0;
  for (const std::string& n : folder->names()) {
    SCOPED_TRACE(n);
    ASSERT_TRUE(ldm->has(n));
    const Shape s = *folder->stored_shape(n);
    Shape stored = *ldm->stored_shape(n);
    while (stored.size() > s.size() && stored.back() == 1) stored.pop_back();
    ASSERT_EQ(stored, s);
    ASSERT_EQ(ldm->get(n, s).to_floats(), folder->get(n, s).to_floats());
    ++compared;
    projections += n == "text_encoder_2.text_projection.weight";
    added += n.rfind("unet.add_embedding.", 0) == 0;
  }
  EXPECT_EQ(projections, 1);
  EXPECT_EQ(added, 4);
  EXPECT_GT(compared, 900);
}

// The LDM file in the other forms SDXL fine-tunes come in, written here from its tensors: a .ckpt
// (torch.save's zip) gives the .safetensors file's latents bit for bit; a bf16 .safetensors is
// recognised as SDXL and reads as stored, every canonical tensor the fp16 one's rounded to bf16
// (nearest even, as torch's .to(torch.bfloat16)).
TEST(Sdxl, CkptAndBf16SingleFiles) {
  const std::filesystem::path d = std::filesystem::temp_directory_path() / ("sdgen_sdxl_forms_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  const auto file = SafetensorsFile::open(kLdm);
  for (const StTensorInfo& t : file->tensors()) ASSERT_EQ(t.dtype, StDType::F16) << t.name;
  const auto [ckpt, b16] = torch_save_twin::other_forms(kLdm, d);

  const Golden& g = golden();
  const nlohmann::json& r = g.runs[0];
  const GenerateParams p = run_params(r);
  Pipeline a(kLdm, DType::F32, Device::CPU), b(ckpt, DType::F32, Device::CPU);
  EXPECT_EQ(b.generate(p).latents, a.generate(p).latents);

  EXPECT_TRUE(Checkpoint::open(b16)->config().sdxl());
  EXPECT_GT(torch_save_twin::expect_bf16_of(kLdm, b16), 900);
  std::filesystem::remove_all(d);
}

// Both tokenizers' padded ids, each encoder's conditioning and the pooled embedding against
// encode_prompt's (clip skip: diffusers' 1, A1111's 2).
TEST(Sdxl, ConditioningMatchesDiffusers) {
  const Golden& g = golden();
  const nlohmann::json cond = nlohmann::json::parse(g.f->metadata().at("cond"));
  Pipeline pipe(kFolder, DType::F32, Device::CPU);
  ASSERT_NE(pipe.tokenizer2(), nullptr);
  int compared = 0;
  for (const auto& c : cond) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    if (name == "neg_zeros") continue;  // zeros: the pipeline runs check it (dpmpp_2m_karras_zeros)
    if (name == "emb") continue;        // with an embedding loaded: EmbeddingMatchesDiffusers
    // Each encoder's text: the second reads prompt_2 / negative_prompt_2 where the entry has one.
    const bool negative = c["side"] == "negative";
    const std::string text = negative ? c["negative_prompt"] : c["prompt"];
    const nlohmann::json& own = negative ? c["negative_prompt_2"] : c["prompt_2"];
    const std::string text2 = own.is_string() ? own.get<std::string>() : text;
    EXPECT_EQ(pipe.tokenizer().encode_padded(text), golden_ids("cond." + name + ".ids_1"));
    EXPECT_EQ(pipe.tokenizer2()->encode_padded(text2), golden_ids("cond." + name + ".ids_2"));
    ConditioningOptions o;
    o.clip_skip = c["clip_skip"].is_null() || c["side"] == "negative" ? 1 : c["clip_skip"].get<int>() + 1;
    const Conditioning a = encode_prompts(pipe.tokenizer(), pipe.text_encoder(), {text}, o);
    const Conditioning b = encode_prompts(*pipe.tokenizer2(), *pipe.text_encoder2(), {text2}, o);
    ASSERT_EQ(a.dim, 8);
    ASSERT_EQ(b.dim, 16);
    const std::vector<float> want = g.floats("cond." + name + ".prompt_embeds");  // [1, 77, 24]
    const std::vector<float> pooled = g.floats("cond." + name + ".pooled_prompt_embeds");  // [1, 12]
    ASSERT_EQ(want.size(), 77u * 24);
    float worst = 0;
    for (int t = 0; t < 77; ++t)
      for (int d = 0; d < 24; ++d) {
        const float got = d < 8 ? a.hidden[(size_t)(t * 8 + d)] : b.hidden[(size_t)(t * 16 + d - 8)];
        worst = std::max(worst, std::fabs(got - want[(size_t)(t * 24 + d)]));
      }
    EXPECT_LE(worst, 2e-5f);
    ASSERT_EQ(b.pooled.size(), pooled.size());
    EXPECT_TRUE(a.pooled.empty());
    float worst_pooled = 0;
    for (size_t i = 0; i < pooled.size(); ++i) worst_pooled = std::max(worst_pooled, std::fabs(b.pooled[i] - pooled[i]));
    EXPECT_LE(worst_pooled, 2e-5f);
    std::printf("[ sdxl ] conditioning %-10s max|d| %.3g, pooled %.3g\n", name.c_str(), worst, worst_pooled);
    ++compared;
  }
  EXPECT_EQ(compared, 6);
}

// Whole runs: micro-conditioning with negative sizes of their own (one image: diffusers 0.42.1 pairs
// the negative and positive ids with the wrong rows above one), zeros for the empty negative prompt,
// the defaults, the second encoder's own texts (prompt_2, negative_prompt_2; one image); Euler,
// DPM++ 2M Karras, Euler a; 128x64, batch 2. The latents after every unit and the
// images by the pixel rule.
TEST(Sdxl, FolderMatchesDiffusers) {
  const Golden& g = golden();
  Pipeline pipe(kFolder, DType::F32, Device::CPU);
  ASSERT_EQ(g.runs.size(), 4u);
  for (const auto& r : g.runs) {
    SCOPED_TRACE(r["key"].get<std::string>());
    GenerateParams p = run_params(r);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    image_goldens::expect_unit_latents(g, r, out, 2e-5f, "sdxl");
    expect_images(out, r["key"], 0.999, 0.0, 255);
  }
}

// In fp16 the UNet and text encoders run in fp16 and the VAE in fp32 (force_upcast, as diffusers):
// the single file gives the folder's fp16 run bit for bit (the same fp16 weights), and both are
// within SD v1's fp16 rule (≥ 60% exact, ≥ 99% within ±1, worst ≤ 6) of diffusers' fp32 images;
// diffusers' own fp16 run spreads less (fp16_spread: ≥ 86% exact, worst ≤ 2).
TEST(Sdxl, Fp16SingleFileEqualsFolderWithinTheFp16Rule) {
  const Golden& g = golden();
  Pipeline folder(kFolder, DType::F16, Device::CPU);
  Pipeline single(kLdm, DType::F16, Device::CPU);
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    SCOPED_TRACE(key);
    GenerateParams p = run_params(r);
    p.record_unit_latents = true;
    const GeneratedBatch a = folder.generate(p);
    EXPECT_EQ(a.latents, single.generate(p).latents);
    image_goldens::expect_unit_latents(g, r, a, 0.02f, "sdxl fp16");
    expect_images(a, key, 0.99, 0.60, 6);
  }
}

// The same model with an fp32 run from the single file: the folder's latents (the same weights).
TEST(Sdxl, SingleFileMatchesDiffusers) {
  const Golden& g = golden();
  Pipeline pipe(kLdm, DType::F32, Device::CPU);
  const nlohmann::json& r = g.runs[0];
  GenerateParams p = run_params(r);
  p.record_unit_latents = true;
  const GeneratedBatch out = pipe.generate(p);
  image_goldens::expect_unit_latents(g, r, out, 2e-5f, "sdxl single file");
  expect_images(out, r["key"], 0.999, 0.0, 255);
}

namespace {
// sd-gen on `model` with the run's prompt, seed and size and `extra`; the images it wrote.
std::vector<std::vector<uint8_t>> run_binary(const std::string& model, const nlohmann::json& r, const std::string& extra) {
  const std::filesystem::path d = std::filesystem::temp_directory_path() / ("sdgen_sdxl_cli_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  const int batch = r["num_images_per_prompt"];
  const std::string negative = r["negative_prompt"].is_null() ? "" : " -n '" + r["negative_prompt"].get<std::string>() + "'";
  const test_helpers::CliRun run = test_helpers::run_cli(
      "--model '" + model + "' -p '" + r["prompt"].get<std::string>() + "'" + negative + " -b " + std::to_string(batch) +
      " --steps 6 -g 5 -W 128 -H 64 -s 2468 " + extra + " --out '" + d.string() + "'");
  EXPECT_EQ(run.code, 0) << run.err;
  std::vector<std::vector<uint8_t>> images;
  for (int b = 0; b < batch && run.code == 0; ++b)
    images.push_back(read_image((d / ("0000" + std::to_string(b) + "-2468-" + std::to_string(b) + ".png")).string(), "x").pixels);
  std::filesystem::remove_all(d);
  return images;
}

// A copy of the folder changed by `edit`, removed with the object.
struct FolderCopy {
  std::filesystem::path dir;
  explicit FolderCopy(const std::function<void(const std::filesystem::path&)>& edit) {
    static int n = 0;
    dir = std::filesystem::temp_directory_path() / ("sdgen_sdxl_" + std::to_string(getpid()) + "_" + std::to_string(n++));
    std::filesystem::remove_all(dir);
    std::filesystem::copy(kFolder, dir, std::filesystem::copy_options::recursive);
    edit(dir);
  }
  ~FolderCopy() { std::filesystem::remove_all(dir); }
};
}  // namespace

// The binary: the micro-conditioning options as diffusers' arguments (sizes WIDTHxHEIGHT, crops
// TOP,LEFT) and --prompt-2 / --negative-prompt-2 on the folder; the empty negative prompt as zeros (force_zeros_for_empty_prompt) and the
// original size alone on the single file, whose fp16 weights keep it within ±1 of diffusers' images.
TEST(Sdxl, ThroughTheBinary) {
  const Golden& g = golden();
  int runs = 0;
  for (const auto& r : g.runs) {
    const std::string key = r["key"];
    std::vector<std::vector<uint8_t>> images;
    if (key == "euler_micro")
      images = run_binary(kFolder, r,
                          "--sampler euler --original-size 160x96 --crop-coords 8,16 --target-size 128x64 "
                          "--negative-original-size 80x48 --negative-crop-coords 0,4 --negative-target-size 96x64");
    else if (key == "dpmpp_2m_karras_zeros")
      images = run_binary(kLdm, r, "--sampler dpmpp_2m --schedule karras --original-size 512x256");
    else if (key == "euler_prompt_2")
      images = run_binary(kFolder, r,
                          "--sampler euler --prompt-2 '" + r["prompt_2"].get<std::string>() + "' --negative-prompt-2 '" +
                              r["negative_prompt_2"].get<std::string>() + "'");
    else
      continue;
    ++runs;
    GeneratedBatch out;
    out.images = images;
    ASSERT_EQ(images.size(), (size_t)r["num_images_per_prompt"].get<int>()) << key;
    const bool folder = key != "dpmpp_2m_karras_zeros";
    expect_images(out, key, folder ? 0.999 : 0.99, 0.0, folder ? 255 : 6);
  }
  EXPECT_EQ(runs, 3);
  // Not a size: one line naming the option, the usage exit code.
  const test_helpers::CliRun bad = test_helpers::run_cli("--model '" + kFolder + "' -p x --original-size 1024 --out /nonexistent");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--original-size: '1024' is not WIDTHxHEIGHT"), std::string::npos) << bad.err;
}

// A part missing or another SDXL model: one line naming it, the model exit code (3).
TEST(Sdxl, RefusedWithOneLine) {
  auto refused = [](const std::string& model, const std::string& why) {
    const test_helpers::CliRun run = test_helpers::run_cli("--model '" + model + "' -p x -W 64 -H 64 --steps 1 --out /nonexistent");
    EXPECT_EQ(run.code, 3) << run.err;
    EXPECT_NE(run.err.find(why), std::string::npos) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  };
  {  // no text_encoder_2 (neither the folder nor model_index.json has it)
    FolderCopy f([](const std::filesystem::path& d) {
      std::filesystem::remove_all(d / "text_encoder_2");
      nlohmann::json j = nlohmann::json::parse(std::ifstream(d / "model_index.json"));
      j.erase("text_encoder_2");
      std::ofstream(d / "model_index.json") << j.dump();
    });
    refused(f.dir.string(), "the UNet takes SDXL's added conditioning (addition_embed_type text_time) but there is no "
                            "second text encoder with a projection (text_encoder_2)");
  }
  {  // model_index.json lists text_encoder_2, the folder lacks it
    FolderCopy f([](const std::filesystem::path& d) { std::filesystem::remove_all(d / "text_encoder_2"); });
    refused(f.dir.string(), "model_index.json lists text_encoder_2 but the folder has none");
  }
  {  // the refiner: text_encoder_2 alone, an aesthetic score
    FolderCopy f([](const std::filesystem::path& d) {
      std::filesystem::remove_all(d / "text_encoder");
      nlohmann::json j = nlohmann::json::parse(std::ifstream(d / "model_index.json"));
      j["text_encoder"] = {nullptr, nullptr};
      j["requires_aesthetics_score"] = true;
      std::ofstream(d / "model_index.json") << j.dump();
    });
    refused(f.dir.string(), "is an SDXL refiner (text_encoder_2 without text_encoder); sd-gen runs SDXL base models");
  }
  {  // a UNet whose added conditioning does not take the pooled width and six size ids (a refiner's five)
    FolderCopy f([](const std::filesystem::path& d) {
      nlohmann::json j = nlohmann::json::parse(std::ifstream(d / "unet" / "config.json"));
      j["projection_class_embeddings_input_dim"] = 32;
      std::ofstream(d / "unet" / "config.json") << j.dump();
    });
    refused(f.dir.string(), "projection_class_embeddings_input_dim 32 is not the pooled text width 12 + 6 size ids × 4");
  }
}

// An SD v1 VAE for an SDXL model: its scaling factor (0.18215) is not the model's (0.13025), so it
// was trained on other latents; one line, exit 3, unless the VAE is SDXL's kind.
TEST(Sdxl, MismatchedVaeRefused) {
  const test_helpers::CliRun run = test_helpers::run_cli("--model '" + kFolder + "' --vae '" + kData +
                                                         "/tiny_sd/diffusers/vae' -p x -W 64 -H 64 --steps 1 --out /nonexistent");
  EXPECT_EQ(run.code, 3) << run.err;
  EXPECT_NE(run.err.find("scaling factor 0.18215"), std::string::npos) << run.err;
}

// Without --width/--height an SDXL model makes 1024×1024 images (diffusers' default for SDXL base);
// one side given keeps it; SD v1 stays at 512.
TEST(Sdxl, DefaultSizeIs1024) {
  const std::filesystem::path d = std::filesystem::temp_directory_path() / ("sdgen_sdxl_size_" + std::to_string(getpid()));
  auto size_of = [&](const std::string& model, const std::string& extra) {
    std::filesystem::remove_all(d);
    const test_helpers::CliRun run =
        test_helpers::run_cli("--model '" + model + "' -p x --steps 1 -s 3 " + extra + " --out '" + d.string() + "'");
    EXPECT_EQ(run.code, 0) << run.err;
    const RgbImage im = read_image((d / "00000-3-0.png").string(), "x");
    return std::make_pair(im.width, im.height);
  };
  EXPECT_EQ(size_of(kFolder, ""), std::make_pair(1024, 1024));
  EXPECT_EQ(size_of(kFolder, "-W 256"), std::make_pair(256, 1024));
  EXPECT_EQ(size_of(kData + "/tiny_sd/diffusers", ""), std::make_pair(512, 512));
  std::filesystem::remove_all(d);
}

// A tiny autoencoder as the VAE (--vae-tiny, as people pass taesdxl), against diffusers' pipeline
// with the tiny AutoencoderTiny as its VAE: euler_a_default's latents (the UNet's, unchanged) and
// the TAESD's images, in process and through the binary.
TEST(Sdxl, TaesdMatchesDiffusers) {
  const Golden& g = golden();
  const nlohmann::json taesd = nlohmann::json::parse(g.f->metadata().at("taesd"));
  nlohmann::json r;
  for (const auto& x : g.runs)
    if (x["key"] == taesd["like"]) r = x;
  ASSERT_FALSE(r.is_null());
  const std::string tiny = kData + "/../../" + taesd["vae_tiny"].get<std::string>();
  ModelOptions o;
  o.vae_tiny = tiny;
  Pipeline pipe(kFolder, DType::F32, Device::CPU, nullptr, o);
  GenerateParams p = run_params(r);
  p.record_unit_latents = true;
  const GeneratedBatch out = pipe.generate(p);
  image_goldens::expect_unit_latents(g, r, out, 2e-5f, "sdxl taesd");
  expect_images(out, "taesd", 0.999, 0.0, 255);
  GeneratedBatch cli;
  cli.images = run_binary(kFolder, r, "--sampler euler_a --vae-tiny '" + tiny + "'");
  ASSERT_EQ(cli.images.size(), 2u);
  expect_images(cli, "taesd", 0.999, 0.0, 255);
}

// --prompt-2 / --negative-prompt-2 on a model with one text encoder: one line, exit 2, before its
// weights load; in process, the same refusal from the pipeline.
TEST(Sdxl, SecondPromptsNeedTwoEncoders) {
  for (const char* extra : {"--prompt-2 'oil painting'", "--negative-prompt-2 grainy"}) {
    SCOPED_TRACE(extra);
    const test_helpers::CliRun run = test_helpers::run_cli("--model '" + kData + "/tiny_sd/diffusers' -p x -W 64 -H 64 --steps 1 " +
                                                           extra + " --out /nonexistent");
    EXPECT_EQ(run.code, 2) << run.err;
    EXPECT_NE(run.err.find("are for SDXL's second text encoder; this model has one"), std::string::npos) << run.err;
  }
  Pipeline pipe(kData + "/tiny_sd/diffusers", DType::F32, Device::CPU);
  GenerateParams p;
  p.prompt = "x";
  p.width = p.height = 64;
  p.steps = 1;
  p.prompt_2 = "oil painting";
  try {
    pipe.generate(p);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("has one text encoder"), std::string::npos) << e.what();
  }
}

// An SDXL embedding (clip_l and clip_g vectors, two each) as diffusers loads it, one
// load_textual_inversion per encoder: both tokenizers' ids (the token expanded to two new ids), the
// joined context and the pooled embedding, which transformers takes at the largest id (the
// embedding's last vector here, not the end token: text_encoder_2's legacy eos_token_id 2). An SD v1
// embedding for SDXL is refused with one line.
TEST(Sdxl, EmbeddingMatchesDiffusers) {
  const Golden& g = golden();
  const nlohmann::json cond = nlohmann::json::parse(g.f->metadata().at("cond"));
  const nlohmann::json* c = nullptr;
  for (const auto& x : cond)
    if (x["name"] == "emb") c = &x;
  ASSERT_NE(c, nullptr);
  ModelOptions options;
  options.embeddings.push_back({std::string(SDGEN_SOURCE_DIR) + "/" + (*c)["embedding"].get<std::string>(),
                                (*c)["token"].get<std::string>()});
  Pipeline pipe(kFolder, DType::F32, Device::CPU, nullptr, options);
  const std::string text = (*c)["prompt"];
  EXPECT_EQ(pipe.tokenizer().encode_padded(text), golden_ids("cond.emb.ids_1"));
  EXPECT_EQ(pipe.tokenizer2()->encode_padded(text), golden_ids("cond.emb.ids_2"));
  const Conditioning a = encode_prompts(pipe.tokenizer(), pipe.text_encoder(), {text});
  const Conditioning b = encode_prompts(*pipe.tokenizer2(), *pipe.text_encoder2(), {text});
  const std::vector<float> want = g.floats("cond.emb.prompt_embeds"), pooled = g.floats("cond.emb.pooled_prompt_embeds");
  float worst = 0, worst_pooled = 0;
  for (int t = 0; t < 77; ++t)
    for (int d = 0; d < 24; ++d) {
      const float got = d < 8 ? a.hidden[(size_t)(t * 8 + d)] : b.hidden[(size_t)(t * 16 + d - 8)];
      worst = std::max(worst, std::fabs(got - want[(size_t)(t * 24 + d)]));
    }
  ASSERT_EQ(b.pooled.size(), pooled.size());
  for (size_t i = 0; i < pooled.size(); ++i) worst_pooled = std::max(worst_pooled, std::fabs(b.pooled[i] - pooled[i]));
  EXPECT_LE(worst, 2e-5f);
  EXPECT_LE(worst_pooled, 2e-5f);
  std::printf("[ sdxl ] embedding: max|d| %.3g, pooled %.3g\n", worst, worst_pooled);

  const test_helpers::CliRun run = test_helpers::run_cli("--model '" + kFolder + "' --embedding '" + kData +
                                                         "/embeddings/tiny-obj.safetensors' -p x -W 64 -H 64 --steps 1 --out /nonexistent");
  EXPECT_EQ(run.code, 3) << run.err;
  EXPECT_NE(run.err.find("no \"clip_l\" tensor; an SDXL embedding holds \"clip_l\" and \"clip_g\" vectors, one set per "
                         "text encoder (this one has neither: an SD v1/2 embedding?)"),
            std::string::npos)
      << run.err;
}

// A LoRA on the UNet (attention, feed-forward, resnet convolutions, time and added embeddings) and
// both text encoders, in diffusers' PEFT names and in kohya's SDXL names (the UNet under its sgm
// module paths, lora_te1_/lora_te2_), merged at load: diffusers' fused run (load_lora_weights,
// fuse_lora) within 2e-5 after every unit. An SD v1 LoRA on SDXL is refused with one line.
TEST(Sdxl, LoraMatchesDiffusers) {
  const Golden& g = golden();
  const nlohmann::json lora = nlohmann::json::parse(g.f->metadata().at("lora"));
  const nlohmann::json* run = nullptr;
  for (const auto& r : g.runs)
    if (r["key"] == lora["like"]) run = &r;
  ASSERT_NE(run, nullptr);
  nlohmann::json r = *run;
  r["key"] = "lora";
  for (const char* form : {"peft", "kohya"}) {
    SCOPED_TRACE(form);
    ModelOptions options;
    options.loras.push_back({std::string(SDGEN_SOURCE_DIR) + "/" + lora[form].get<std::string>(), 1.0f});
    Pipeline pipe(kFolder, DType::F32, Device::CPU, nullptr, options);
    GenerateParams p = run_params(r);
    p.record_unit_latents = true;
    const GeneratedBatch out = pipe.generate(p);
    image_goldens::expect_unit_latents(g, r, out, 2e-5f, form);
    expect_images(out, "lora", 0.999, 0.0, 255);
  }
  const test_helpers::CliRun bad = test_helpers::run_cli("--model '" + kFolder + "' --lora '" + kData +
                                                         "/lora/tiny_lora_kohya.safetensors' -p x -W 64 -H 64 --steps 1 --out /nonexistent");
  EXPECT_EQ(bad.code, 3) << bad.err;
  EXPECT_NE(bad.err.find("do not fit this model's weight"), std::string::npos) << bad.err;
}

// img2img (diffusers' StableDiffusionXLImg2ImgPipeline on the same model, SDXL base's size ids): the
// picture encoded by the VAE in fp32 (force_upcast), scaled by 0.13025 and noised to strength 0.6 of
// Euler a's schedule; the latents after every unit and the images.
TEST(Sdxl, Img2ImgMatchesDiffusers) {
  const Golden& g = golden();
  nlohmann::json r = nlohmann::json::parse(g.f->metadata().at("img2img"));
  Pipeline pipe(kFolder, DType::F32, Device::CPU);
  GenerateParams p = run_params(r);
  image_goldens::set_pictures(p, SDGEN_SOURCE_DIR, r);
  p.record_unit_latents = true;
  const GeneratedBatch out = pipe.generate(p);
  image_goldens::expect_unit_latents(g, r, out, 2e-5f, "sdxl img2img");
  expect_images(out, "img2img", 0.999, 0.0, 255);
}

// Inpainting with SDXL base (diffusers' StableDiffusionXLInpaintPipeline on the same model: a 4-channel
// UNet, so after every step the kept region's latents, renoised to the next step's level, are blended
// back): the grey mask binarized at 0.5 (127 kept, 128 repainted), strength 0.75 of Euler a's
// schedule, batch 2; the latents after every unit and the images.
TEST(Sdxl, InpaintMatchesDiffusers) {
  const Golden& g = golden();
  nlohmann::json r = nlohmann::json::parse(g.f->metadata().at("inpaint"));
  Pipeline pipe(kFolder, DType::F32, Device::CPU);
  GenerateParams p = run_params(r);
  image_goldens::set_pictures(p, SDGEN_SOURCE_DIR, r);
  p.record_unit_latents = true;
  const GeneratedBatch out = pipe.generate(p);
  image_goldens::expect_unit_latents(g, r, out, 2e-5f, "sdxl inpaint");
  expect_images(out, "inpaint", 0.999, 0.0, 255);
}

// A ControlNet of SDXL's layout (its own add_embedding of the pooled text and size ids, transformer
// depths 1/2, linear projections; a diffusers folder in fp16) against diffusers'
// StableDiffusionXLControlNetPipeline: Euler a, the control picture resized by diffusers' Lanczos,
// scale 0.8; batch 2, then guess mode on one image (the net sees the conditional rows and their added
// conditioning alone); then with pictures in, against StableDiffusionXLControlNetImg2ImgPipeline and
// ...InpaintPipeline (Img2ImgMatchesDiffusers' and InpaintMatchesDiffusers' calls with the net). In
// process from the folder, then the folder's weights file alone, then guess mode through the binary.
TEST(Sdxl, ControlNetMatchesDiffusers) {
  const Golden& g = golden();
  const nlohmann::json cn = nlohmann::json::parse(g.f->metadata().at("controlnet"));
  const std::string net = std::string(SDGEN_SOURCE_DIR) + "/" + cn["controlnet"].get<std::string>();
  const std::string file = net + "/diffusion_pytorch_model.safetensors";
  const std::string image = std::string(SDGEN_SOURCE_DIR) + "/" + cn["image"].get<std::string>();
  ASSERT_EQ(cn["runs"].size(), 4u);
  for (const std::string& form : {net, file}) {
    ModelOptions options;
    options.controlnets = {form};
    Pipeline pipe(kFolder, DType::F32, Device::CPU, nullptr, options);
    for (const nlohmann::json& r : cn["runs"]) {
      const std::string key = r["key"];
      SCOPED_TRACE(form + " " + key);
      GenerateParams p = run_params(r);
      p.controls.push_back(image_goldens::control_unit(SDGEN_SOURCE_DIR, cn, form));
      p.guess_mode = r["guess_mode"];
      if (r.contains("strength")) image_goldens::set_pictures(p, SDGEN_SOURCE_DIR, r);  // img2img, inpainting
      p.record_unit_latents = true;
      const GeneratedBatch out = pipe.generate(p);
      image_goldens::expect_unit_latents(g, r, out, 2e-5f, ("sdxl " + key).c_str());
      expect_images(out, key, 0.999, 0.0, 255);
    }
  }
  const nlohmann::json& r = cn["runs"][1];
  GeneratedBatch cli;
  cli.images = run_binary(kFolder, r,
                          "--sampler euler_a --guess-mode --control '" + net + ":0.8' --control-image '" + image + "'");
  ASSERT_EQ(cli.images.size(), 1u);
  expect_images(cli, "control_guess", 0.999, 0.0, 255);
}

// A ControlNet for another UNet is refused with one line (exit 3), nothing written: SD v1's on SDXL
// and SDXL's on SD v1 (folder configs: cross_attention_dim and the added embedding differ), and a
// folder whose config drops SDXL's added embedding.
TEST(Sdxl, ControlNetForAnotherUnetRefused) {
  const std::string sdxl_net = kData + "/tiny_sdxl/controlnet";
  const std::filesystem::path odd = std::filesystem::temp_directory_path() / ("sdgen_sdxl_cn_" + std::to_string(getpid()));
  std::filesystem::remove_all(odd);
  std::filesystem::copy(sdxl_net, odd);
  {
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(odd / "config.json"));
    cfg["addition_embed_type"] = nullptr;
    std::ofstream(odd / "config.json") << cfg.dump();
  }
  const std::pair<std::string, std::string> cases[] = {
      {kFolder, kData + "/tiny_controlnet/a"},
      {kData + "/tiny_sd/diffusers", sdxl_net},
      {kFolder, odd.string()},
  };
  for (const auto& [model, net] : cases) {
    SCOPED_TRACE(model + " " + net);
    const test_helpers::CliRun run = test_helpers::run_cli("--model '" + model + "' -p x -W 64 -H 64 --steps 1 --control '" +
                                                           net + "' --control-image '" + kData +
                                                           "/images/canny_80x60.png' --out /nonexistent");
    EXPECT_EQ(run.code, 3) << run.err;
    EXPECT_NE(run.err.find("a ControlNet for another UNet than the model's"), std::string::npos) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  }
  std::filesystem::remove_all(odd);
}
