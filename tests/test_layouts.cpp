// The checkpoint layouts today's libraries write, against diffusers' images for them
// (tests/data/golden/layouts.safetensors + layouts.json, made by tests/reference/make_layout_goldens.py
// with the current PyPI releases, transformers 5):
//   - tests/data/tiny_sd_tf5/diffusers: save_pretrained's folder, text encoder without "text_model.",
//     tokenizer as tokenizer.json only;
//   - tests/data/tiny_sd_tf5/tiny_sd_tf5_fp16.safetensors: that folder converted as diffusers'
//     convert_diffusers_to_original_stable_diffusion.py --half does (cond_stage_model.transformer.embeddings.*).
// Images from the Pipeline and from the sd-gen binary equal diffusers' within ±1 per channel on
// >= 99.9% of channels; the tokenizer from tokenizer.json gives the reference ids.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "sdgen/error.h"
#include "text/tokenizer.h"

#include "stb_image_static.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;
const std::string kFolder = kData + "/tiny_sd_tf5/diffusers";
const std::string kSingle = kData + "/tiny_sd_tf5/tiny_sd_tf5_fp16.safetensors";

struct LayoutRun {
  std::string name, prompt, negative;
  int steps;
  float guidance;
  uint64_t seed;
  int size, batch;
};
// As recorded in tests/data/golden/layouts.json ("runs"): make_goldens.py's run0 and run1.
const LayoutRun kRuns[] = {{"run0", "a photo of a cat", "", 5, 7.5f, 42, 64, 2},
                     {"run1", "a red house by the lake, oil painting", "blurry, low quality", 7, 7.5f, 1234, 64, 2}};

const SafetensorsFile& golden() {
  static auto f = SafetensorsFile::open(kData + "/golden/layouts.safetensors");
  return *f;
}
const uint8_t* golden_u8(const std::string& name, size_t* n) {
  const StTensorInfo* t = golden().find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return nullptr;
  *n = (size_t)t->numel();
  return golden().data(*t);
}
nlohmann::json golden_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

// fp32 math on both sides (the single file's fp16 weights are widened to fp32 on both sides too),
// the same expressions up to summation order: as in tests/test_pipeline.cpp, a channel differs
// only where the exact value sits within ~1e-3 of a rounding boundary. The bound asked for is
// ±1 on >= 99.9% of channels; none may differ by more than 2.
void expect_image(const uint8_t* got, const uint8_t* ref, size_t n, const std::string& what) {
  const test_helpers::ImageDiff d = test_helpers::compare_u8(got, ref, n);
  EXPECT_GE(d.within1, 0.999) << what << ": share of channels within ±1 of diffusers'";
  EXPECT_LE(d.worst, 2) << what << ": largest channel difference";
  std::printf("[ image ] %s: %.2f%% exact, %.2f%% within ±1, worst %d\n", what.c_str(), 100.0 * d.exact,
              100.0 * d.within1, d.worst);
}

void expect_pipeline_images(const std::string& model, const std::string& golden_prefix) {
  Pipeline pipe(model, DType::F32, Device::CPU);
  for (const LayoutRun& r : kRuns) {
    GenerateParams p;
    p.prompt = r.prompt;
    p.negative_prompt = r.negative;
    p.batch = r.batch;
    p.steps = r.steps;
    p.guidance = r.guidance;
    p.seed = r.seed;
    p.width = p.height = r.size;
    GeneratedBatch out = pipe.generate(p);
    size_t n = 0;
    const uint8_t* ref = golden_u8(golden_prefix + "." + r.name + ".image_uint8", &n);
    ASSERT_NE(ref, nullptr);
    ASSERT_EQ((int)out.images.size(), r.batch);
    ASSERT_EQ(n, out.images.size() * out.images[0].size());
    for (size_t b = 0; b < out.images.size(); ++b)
      expect_image(out.images[b].data(), ref + b * out.images[b].size(), out.images[b].size(),
                   model + " " + r.name + " image " + std::to_string(b));
  }
}

}  // namespace

TEST(Layouts, GoldensWereMadeWithTransformers5) {
  const nlohmann::json j = golden_json(kData + "/golden/layouts.json");
  EXPECT_EQ(j["versions"]["transformers"].get<std::string>().substr(0, 2), "5.");
  EXPECT_EQ(j["folder_tokenizer_files"].dump().find("vocab.json"), std::string::npos);
}

TEST(Layouts, Transformers5FolderLoads) {
  auto ck = Checkpoint::open(kFolder);
  EXPECT_FALSE(ck->tokenizer_vocab_json());
  EXPECT_EQ(ck->tokenizer_json().value_or(""), kFolder + "/tokenizer/tokenizer.json");
  // The same canonical names, and the same text encoder tensors, as transformers 4's folder of the
  // same model (make_goldens.py; same seeds): only the stored names differ.
  auto old = Checkpoint::open(kData + "/tiny_sd/diffusers");
  auto a = ck->names(), b = old->names();
  EXPECT_EQ(std::set<std::string>(a.begin(), a.end()), std::set<std::string>(b.begin(), b.end()));
  const Shape tok{49408, 8};
  EXPECT_EQ(ck->get("text_encoder.text_model.embeddings.token_embedding.weight", tok).to_floats(),
            old->get("text_encoder.text_model.embeddings.token_embedding.weight", tok).to_floats());
  EXPECT_EQ(ck->config().clip.layers, 2);
  EXPECT_EQ(ck->config().clip.heads, 2);
}

TEST(Layouts, ConvertedSingleFileLoads) {
  auto ck = Checkpoint::open(kSingle);
  auto old = Checkpoint::open(kData + "/tiny_sd/tiny_sd_fp16.safetensors");
  auto a = ck->names(), b = old->names();
  EXPECT_EQ(std::set<std::string>(a.begin(), a.end()), std::set<std::string>(b.begin(), b.end()));
  EXPECT_EQ(ck->config().clip.hidden, 8);
  EXPECT_EQ(ck->config().clip.layers, 2);
  EXPECT_EQ(ck->stored_shape("text_encoder.text_model.final_layer_norm.weight").value_or(Shape{}), (Shape{8}));
}

TEST(Layouts, Transformers5FolderMatchesDiffusers) { expect_pipeline_images(kFolder, "folder"); }

TEST(Layouts, ConvertedSingleFileMatchesDiffusers) { expect_pipeline_images(kSingle, "single_fp16"); }

// The sd-gen binary, nothing injected, on both layouts (run0).
TEST(Layouts, CliWritesDiffusersImages) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_layouts_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const LayoutRun& r = kRuns[0];
  for (const auto& [model, prefix] : {std::pair{kFolder, "folder"}, std::pair{kSingle, "single_fp16"}}) {
    const std::string out = (dir / prefix).string();
    const std::string cmd = std::string("'") + SDGEN_CLI_PATH + "' --device cpu --quiet --model '" + model +
                            "' --prompt '" + r.prompt + "' --seed 42 --batch 2 --steps 5 --guidance 7.5 "
                            "--sampler ddim -W 64 -H 64 --out '" + out + "' --name 'img-{i}'";
    const int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
    size_t n = 0;
    const uint8_t* ref = golden_u8(std::string(prefix) + ".run0.image_uint8", &n);
    ASSERT_NE(ref, nullptr);
    const size_t per = 64 * 64 * 3;
    ASSERT_EQ(n, 2 * per);
    for (int b = 0; b < 2; ++b) {
      const std::string png = out + "/img-" + std::to_string(b) + ".png";
      int w = 0, h = 0, c = 0;
      unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
      ASSERT_NE(px, nullptr) << png;
      ASSERT_EQ(w * h, 64 * 64) << png;
      expect_image(px, ref + b * per, per, png);
      stbi_image_free(px);
    }
  }
  fs::remove_all(dir);
}

// tokenizer.json against the reference ids of tests/data/tokenizer/golden.json (transformers 4's
// CLIPTokenizer with ftfy). Our cleanup is that tokenizer's whatever file the vocabulary comes
// from, so every case matches. transformers 5's own tokenizer (normalizer NFC + lowercase, no
// ftfy, no HTML unescaping) gives the same ids except on the cases layouts.json lists: that golden
// set is mostly cleanup stress cases (mojibake, HTML entities, control characters, upper-case
// special tokens), and on every other case these ids are transformers 5's too.
TEST(Layouts, TokenizerJsonGivesTheReferenceIds) {
  const ClipTokenizer tok = ClipTokenizer::from_tokenizer_json(kFolder + "/tokenizer/tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), 49408);
  const nlohmann::json golden = golden_json(kData + "/tokenizer/golden.json");
  const std::set<size_t> differ = golden_json(kData + "/golden/layouts.json")["tokenizer"]["differ"].get<std::set<size_t>>();
  const auto& cases = golden["cases"];
  ASSERT_GE(cases.size(), 300u);
  ASSERT_GE(cases.size() - differ.size(), 100u) << "most plain prompts tokenize alike in transformers 4 and 5";
  size_t matched = 0, tf5_matched = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int> got = tok.encode(cases[i]["text"]);
    EXPECT_EQ(got, cases[i]["ids"].get<std::vector<int>>()) << "case " << i;
    EXPECT_EQ(tok.encode_padded(cases[i]["text"]), cases[i]["padded"].get<std::vector<int>>()) << "case " << i;
    matched += got == cases[i]["ids"].get<std::vector<int>>();
    if (!differ.count(i)) tf5_matched += got == cases[i]["ids"].get<std::vector<int>>();
  }
  EXPECT_EQ(matched, cases.size());
  std::printf("[ tokenizer ] tokenizer.json: %zu/%zu golden cases; %zu equal to transformers 5's ids, %zu where "
              "transformers 5 (no ftfy) differs\n",
              matched, cases.size(), tf5_matched, differ.size());
}

// tokenizers < 0.20 wrote the merges as "a b" strings: the same file in that form gives the same ids.
TEST(Layouts, TokenizerJsonWithStringMerges) {
  nlohmann::json j = golden_json(kFolder + "/tokenizer/tokenizer.json");
  ASSERT_TRUE(j["model"]["merges"][0].is_array()) << "the committed file has [a, b] pairs";
  for (auto& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  const std::string path = ::testing::TempDir() + "sdgen_tok_strings_" + std::to_string(getpid()) + ".json";
  std::ofstream(path) << j.dump();
  const ClipTokenizer a = ClipTokenizer::from_tokenizer_json(path);
  const ClipTokenizer b = ClipTokenizer::from_tokenizer_json(kFolder + "/tokenizer/tokenizer.json");
  const nlohmann::json golden = golden_json(kData + "/tokenizer/golden.json");
  for (size_t i = 0; i < golden["cases"].size(); i += 7) {
    const std::string text = golden["cases"][i]["text"];
    EXPECT_EQ(a.encode(text), golden["cases"][i]["ids"].get<std::vector<int>>()) << "case " << i;
    EXPECT_EQ(a.encode(text), b.encode(text)) << "case " << i;
  }
  fs::remove(path);
}

// A broken tokenizer.json: one line naming the file.
TEST(Layouts, BadTokenizerJsonIsNamed) {
  const std::string dir = ::testing::TempDir() + "sdgen_badtok_" + std::to_string(getpid());
  fs::create_directories(dir);
  const std::pair<const char*, const char*> cases[] = {
      {"{\"model\": ", "is not valid JSON"},
      {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "has no BPE model"},
      {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}", "neither \"a b\" nor [a, b]"},
      {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a b c\"]}}", "bad merge 'a b c'"},
      {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "has no <|startoftext|> token"},
  };
  for (const auto& [text, want] : cases) {
    const std::string path = dir + "/tokenizer.json";
    std::ofstream(path) << text;
    try {
      ClipTokenizer::from_tokenizer_json(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ExitCode::kModel);
      EXPECT_NE(msg.find("'" + path + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find(want), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  fs::remove_all(dir);
}

// A folder with neither vocab.json + merges.txt nor tokenizer.json uses weights/' BPE list, as
// before: the same vocabulary, so the same images.
TEST(Layouts, FolderWithoutTokenizerFallsBack) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_notok_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* part : {"model_index.json", "unet", "vae", "text_encoder", "scheduler"})
    fs::create_symlink(fs::canonical(kFolder + "/" + part), dir / part);
  auto ck = Checkpoint::open(dir.string());
  EXPECT_FALSE(ck->tokenizer_json());
  EXPECT_FALSE(ck->tokenizer_vocab_json());
  Pipeline pipe(dir.string(), DType::F32, Device::CPU);
  const LayoutRun& r = kRuns[0];
  GenerateParams p;
  p.prompt = r.prompt;
  p.batch = r.batch;
  p.steps = r.steps;
  p.guidance = r.guidance;
  p.seed = r.seed;
  p.width = p.height = r.size;
  GeneratedBatch out = pipe.generate(p);
  size_t n = 0;
  const uint8_t* ref = golden_u8("folder.run0.image_uint8", &n);
  ASSERT_NE(ref, nullptr);
  ASSERT_EQ(n, out.images.size() * out.images[0].size());
  for (size_t b = 0; b < out.images.size(); ++b)
    expect_image(out.images[b].data(), ref + b * out.images[b].size(), out.images[b].size(),
                 "no tokenizer files, image " + std::to_string(b));
  fs::remove_all(dir);
}
