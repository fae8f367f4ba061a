// --text-cleanup basic against transformers 5's CLIPTokenizer (golden ids of
// tests/reference/make_tokenizer_basic_golden.py over golden.json's prompts), its cleanup on
// hand-derived cases, and the option through the binary: records, PNG parameters, prompt files and
// bad values.
#include <gtest/gtest.h>
#include "stb_image_static.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "test_helpers.h"
#include "text/text_clean.h"
#include "text/tokenizer.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;
using test_helpers::run_cli;
using test_helpers::slurp;

const std::string kData = std::string(SDGEN_TEST_DATA) + "/tokenizer";
const std::string kBpeGz = std::string(SDGEN_SOURCE_DIR) + "/weights/bpe_simple_vocab_16e6.txt.gz";
const std::string kModel = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";

nlohmann::json load(const std::string& name) {
  std::ifstream in(kData + "/" + name);
  EXPECT_TRUE(in.good()) << "missing " << kData << "/" << name;
  return nlohmann::json::parse(in);
}

const ClipTokenizer& gz_tokenizer() {
  static const ClipTokenizer t = ClipTokenizer::from_bpe_gz(kBpeGz);
  return t;
}

// golden.json's prompts (transformers 4 with ftfy made their ids) with transformers 5's ids.
void check_basic(const ClipTokenizer& tok, const char* what) {
  const nlohmann::json ftfy = load("golden.json"), basic = load("golden_basic.json");
  std::vector<std::string> texts;
  std::string joined;
  for (const auto& c : ftfy["cases"]) {
    texts.push_back(c["text"].get<std::string>());
    joined += (texts.size() > 1 ? std::string(1, '\0') : std::string()) + texts.back();
  }
  ASSERT_EQ(sha256_hex(joined), basic["texts_sha256"].get<std::string>()) << "golden_basic.json is not golden.json's pair";
  const auto& ids = basic["ids"];
  ASSERT_EQ(ids.size(), texts.size());
  size_t matched = 0, differ_from_ftfy = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int> want = ids[i].get<std::vector<int>>();
    std::vector<int> want_padded{ClipTokenizer::kBos};
    want_padded.insert(want_padded.end(), want.begin(), want.begin() + (long)std::min<size_t>(want.size(), 75));
    want_padded.resize(ClipTokenizer::kContext, ClipTokenizer::kEos);
    bool truncated = false;
    const std::vector<int> got = tok.encode(texts[i], TextCleanup::Basic);
    EXPECT_EQ(got, want) << "case " << i;
    EXPECT_EQ(tok.encode_padded(texts[i], &truncated, TextCleanup::Basic), want_padded) << "case " << i;
    EXPECT_EQ(truncated, want.size() > 75u) << "case " << i;
    matched += got == want;
    differ_from_ftfy += want != ftfy["cases"][i]["ids"].get<std::vector<int>>();
  }
  std::printf("[ tokenizer ] %s, basic: %zu/%zu cases match transformers %s (%zu differ from ftfy's)\n", what,
              matched, texts.size(), basic["generator"]["transformers"].get<std::string>().c_str(), differ_from_ftfy);
  EXPECT_EQ(matched, texts.size());
  // The two cleanups are told apart by most of the set: a mode mixed up would not pass.
  EXPECT_GT(differ_from_ftfy, texts.size() / 4);
}

TEST(Tokenizer, BasicCleanupEqualsTransformers5) { check_basic(gz_tokenizer(), "bpe_simple_vocab_16e6.txt.gz"); }

TEST(Tokenizer, BasicCleanupFromTokenizerJson) {
  // What transformers 5 saves: tokenizer.json alone (tests/data/tiny_sd_tf5, make_layout_goldens.py).
  const std::string file = std::string(SDGEN_TEST_DATA) + "/tiny_sd_tf5/diffusers/tokenizer/tokenizer.json";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  check_basic(ClipTokenizer::from_tokenizer_json(file), "tokenizer.json");
}

std::u32string u32(const char* utf8) { return text::utf8_decode(utf8); }

TEST(TextCleanup, BasicCleanIsNfcWhitespaceAndLowercase) {
  // NFC composes; each run of White_Space is one space, ends kept; nothing else is fixed.
  EXPECT_EQ(text::basic_clean(u32("  Cafe\xCC\x81\t\xE3\x80\x80 X\n")), u32(" caf\xC3\xA9 x "));
  EXPECT_EQ(text::basic_clean(u32("fish &AMP; chips \xE2\x80\x9Cq\xE2\x80\x9D \xEF\xBC\xA1")),
            u32("fish &amp; chips \xE2\x80\x9Cq\xE2\x80\x9D \xEF\xBD\x81"));  // full-width A to full-width a
  // Per-character lowercase: a final capital sigma is σ (Python's str.lower gives ς), İ is i + U+0307.
  EXPECT_EQ(text::basic_clean(u32("\xCE\xA3\xCE\x9F\xCE\xA6\xCE\x9F\xCE\xA3 \xC4\xB0")),
            u32("\xCF\x83\xCE\xBF\xCF\x86\xCE\xBF\xCF\x83 i\xCC\x87"));
  EXPECT_EQ(text::python_lower(u32("\xCE\xA3\xCE\x9F\xCE\xA6\xCE\x9F\xCE\xA3")), u32("\xCF\x83\xCE\xBF\xCF\x86\xCE\xBF\xCF\x82"));
}

TEST(TextCleanup, BasicTokensDifferWhereOnlyFtfyFixes) {
  const ClipTokenizer& t = gz_tokenizer();
  const auto ftfy = [&](const char* s) { return t.encode(s, TextCleanup::Ftfy); };
  const auto basic = [&](const char* s) { return t.encode(s, TextCleanup::Basic); };
  // HTML entities: ftfy unescapes; basic tokenizes "&", "amp", ";" as the ftfy path does spaced out.
  EXPECT_EQ(ftfy("fish &amp; chips"), ftfy("fish & chips"));
  EXPECT_EQ(basic("fish &amp; chips"), ftfy("fish & amp ; chips"));
  // Curly apostrophe: ftfy straightens it into the "'s" contraction.
  EXPECT_EQ(ftfy("it\xE2\x80\x99s"), ftfy("it's"));
  EXPECT_NE(basic("it\xE2\x80\x99s"), basic("it's"));
  // Plain lowercase ASCII prompts are the same either way.
  EXPECT_EQ(basic("a photograph of an astronaut, it's 8k"), ftfy("a photograph of an astronaut, it's 8k"));
  // The literal special token is one id either way; spelled in capitals it is text, and the GPT-2
  // split of transformers 5's byte-level step cuts it into "<|", "endoftext", "|>".
  EXPECT_EQ(basic("<|endoftext|>"), std::vector<int>{ClipTokenizer::kEos});
  EXPECT_EQ(ftfy("a <|ENDOFTEXT|>"), (std::vector<int>{320, ClipTokenizer::kEos}));
  std::vector<int> split = basic("a");
  for (const char* piece : {"<|", "endoftext", "|>"}) {
    const std::vector<int> p = basic(piece);
    split.insert(split.end(), p.begin(), p.end());
  }
  EXPECT_EQ(basic("a <|ENDOFTEXT|>"), split);
  // Contractions: with IGNORECASE, "'" + long s (U+017F) is one "'s" piece; without, two pieces.
  std::vector<int> pieces = basic("it");
  for (const char* piece : {"'", "\xC5\xBF"}) {
    const std::vector<int> p = basic(piece);
    pieces.insert(pieces.end(), p.begin(), p.end());
  }
  EXPECT_EQ(basic("it'\xC5\xBF"), pieces);
  EXPECT_NE(ftfy("it'\xC5\xBF"), pieces);
}

// ---- through the binary ----

struct Dir {
  fs::path path;
  explicit Dir(const std::string& name) : path(fs::temp_directory_path() / ("sdgen_textclean_" + name + "_" + std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() { fs::remove_all(path); }
};

std::vector<unsigned char> pixels(const fs::path& png) {
  int w = 0, h = 0, c = 0;
  unsigned char* px = stbi_load(png.c_str(), &w, &h, &c, 3);
  EXPECT_NE(px, nullptr) << png;
  if (!px) return {};
  std::vector<unsigned char> v(px, px + (size_t)w * h * 3);
  stbi_image_free(px);
  return v;
}

TEST(TextCleanupCli, BasicTokenizesAsTransformers5AndIsRecorded) {
  Dir dir("cli");
  const std::string common = "--model '" + kModel + "' --seed 5 --steps 2 -W 64 -H 64 --out '" + dir.path.string() + "' ";
  // Under basic, "fish &amp; chips" is the tokens ftfy gives "fish & amp ; chips" (checked above in
  // process): the same image. Under ftfy it is "fish & chips": another one.
  const auto run = [&](const std::string& args, const std::string& name) {
    const auto r = run_cli(common + "--name " + name + " " + args);
    EXPECT_EQ(r.code, 0) << r.err;
    return pixels(dir.path / (name + ".png"));
  };
  const auto basic = run("--text-cleanup basic -p 'fish &amp; chips'", "basic");
  const auto spaced = run("-p 'fish & amp ; chips'", "spaced");
  const auto ftfy = run("--text-cleanup ftfy -p 'fish &amp; chips'", "ftfy");
  ASSERT_FALSE(basic.empty());
  EXPECT_EQ(basic, spaced);
  EXPECT_NE(basic, ftfy);
  // PNG parameters: written for basic only, so --from-png repeats it; A1111's own runs are ftfy.
  EXPECT_NE(slurp(dir.path / "basic.png").find("Text cleanup: basic"), std::string::npos);
  EXPECT_EQ(slurp(dir.path / "ftfy.png").find("Text cleanup"), std::string::npos);
  const auto again = run_cli(common + "--name again --from-png '" + (dir.path / "basic.png").string() + "'");
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(pixels(dir.path / "again.png"), basic);
}

TEST(TextCleanupCli, PromptFileKeyAndRecord) {
  Dir dir("file");
  const fs::path pf = dir.path / "prompts.jsonl";
  std::ofstream(pf) << R"({"prompt": "it’s a cat", "text_cleanup": "basic", "name": "b"})" << "\n"
                    << R"({"prompt": "it’s a cat", "name": "f"})" << "\n";
  const auto r = test_helpers::run_sdgen("--device cpu --quiet --json --model '" + kModel + "' --prompt-file '" + pf.string() +
                                         "' --seed 5 --steps 1 -W 64 -H 64 --out '" + dir.path.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  // One --json record per image, in job order: the setting is in the first only (ftfy is left out,
  // as before the option existed).
  std::istringstream lines(r.out);
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 2u) << r.out;
  EXPECT_EQ(records[0]["settings"].value("text_cleanup", ""), "basic") << records[0].dump();
  EXPECT_FALSE(records[1]["settings"].contains("text_cleanup")) << records[1].dump();
  EXPECT_NE(pixels(dir.path / "b.png"), pixels(dir.path / "f.png"));
}

TEST(TextCleanupCli, UnknownValueIsOneUsageLine) {
  Dir dir("bad");
  const auto r = run_cli("--model '" + kModel + "' -p cat --steps 1 -W 64 -H 64 --text-cleanup nfkc --out '" + dir.path.string() + "'");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--text-cleanup 'nfkc' is not one of ftfy, basic"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(fs::is_empty(dir.path));
  const fs::path pf = dir.path / "p.jsonl";
  std::ofstream(pf) << R"({"prompt": "cat", "text_cleanup": 1})" << "\n";
  const auto f = run_cli("--model '" + kModel + "' --prompt-file '" + pf.string() + "' --steps 1 -W 64 -H 64 --out '" + dir.path.string() + "'");
  EXPECT_EQ(f.code, 2) << f.err;
  EXPECT_NE(f.err.find("text_cleanup"), std::string::npos) << f.err;
}

}  // namespace
}  // namespace sdgen
