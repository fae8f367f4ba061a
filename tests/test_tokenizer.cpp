// CLIP tokenizer against transformers' CLIPTokenizer (with ftfy): golden ids made by
// tests/reference/make_tokenizer_golden.py, for both vocabulary sources, plus error handling.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sdgen/error.h"
#include "text/text_clean.h"
#include "text/tokenizer.h"

namespace sdgen {
namespace {

const std::string kData = std::string(SDGEN_TEST_DATA) + "/tokenizer";
const std::string kBpeGz = std::string(SDGEN_SOURCE_DIR) + "/weights/bpe_simple_vocab_16e6.txt.gz";

nlohmann::json load_golden() {
  std::ifstream in(kData + "/golden.json");
  EXPECT_TRUE(in.good()) << "missing " << kData << "/golden.json";
  return nlohmann::json::parse(in);
}

const ClipTokenizer& gz_tokenizer() {
  static const ClipTokenizer t = ClipTokenizer::from_bpe_gz(kBpeGz);
  return t;
}

std::string show(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

// Every golden case, untruncated and padded; reports how many matched.
void check_all(const ClipTokenizer& tok, const char* what) {
  const nlohmann::json golden = load_golden();
  ASSERT_EQ(golden["cleanup"], "ftfy.fix_text + whitespace_clean + lower (transformers CLIPTokenizer)");
  const auto& cases = golden["cases"];
  ASSERT_GE(cases.size(), 300u);
  size_t matched = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const std::vector<int> want = c["ids"].get<std::vector<int>>();
    const std::vector<int> want_padded = c["padded"].get<std::vector<int>>();
    bool truncated = false;
    const std::vector<int> got = tok.encode(text);
    const std::vector<int> got_padded = tok.encode_padded(text, &truncated);
    EXPECT_EQ(got, want) << "text: " << show(text);
    EXPECT_EQ(got_padded, want_padded) << "text: " << show(text);
    EXPECT_EQ(truncated, want.size() > 75u);
    if (got == want && got_padded == want_padded) ++matched;
  }
  std::printf("[ tokenizer ] %s: %zu/%zu golden cases match transformers %s\n", what, matched, cases.size(),
              golden["generator"]["transformers"].get<std::string>().c_str());
  EXPECT_EQ(matched, cases.size());
}

TEST(Tokenizer, GoldenFromBpeGz) { check_all(gz_tokenizer(), "bpe_simple_vocab_16e6.txt.gz"); }

TEST(Tokenizer, GoldenFromVocabMerges) {
  // The tiny model's diffusers folder carries the tokenizer files transformers saved
  // (tests/reference/make_goldens.py derives them from the same BPE list).
  const std::string folder = std::string(SDGEN_TEST_DATA) + "/tiny_sd/diffusers/tokenizer";
  const ClipTokenizer tok = ClipTokenizer::from_vocab_merges(folder + "/vocab.json", folder + "/merges.txt");
  EXPECT_EQ(tok.vocab_size(), 49408);
  check_all(tok, "vocab.json + merges.txt");
}

TEST(Tokenizer, VocabularyAndSpecials) {
  const ClipTokenizer& tok = gz_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49408);  // 256 + 256 + 48894 merges + 2 specials
  EXPECT_TRUE(tok.encode("").empty());
  const std::vector<int> empty = tok.encode_padded("");
  ASSERT_EQ(empty.size(), 77u);
  EXPECT_EQ(empty[0], ClipTokenizer::kBos);
  for (int i = 1; i < 77; ++i) EXPECT_EQ(empty[i], ClipTokenizer::kEos);
  // A single byte symbol with </w>: "!" is byte 0x21, the first entry, so "!</w>" is id 256.
  EXPECT_EQ(tok.encode("!"), std::vector<int>{256});
}

TEST(Tokenizer, TruncationKeepsFinalEos) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "cat ";
  bool truncated = false;
  const std::vector<int> ids = gz_tokenizer().encode_padded(text, &truncated);
  EXPECT_TRUE(truncated);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), ClipTokenizer::kBos);
  EXPECT_EQ(ids.back(), ClipTokenizer::kEos);
  const std::vector<int> one = gz_tokenizer().encode("cat");
  ASSERT_EQ(one.size(), 1u);
  for (int i = 1; i < 76; ++i) EXPECT_EQ(ids[i], one[0]);
}

void expect_model_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kModel);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, MissingAndCorruptFiles) {
  const std::string missing = "/nonexistent/bpe_simple_vocab_16e6.txt.gz";
  expect_model_error([&] { ClipTokenizer::from_bpe_gz(missing); }, missing);
  const std::string junk = ::testing::TempDir() + "sdgen_tokenizer_junk.txt.gz";
  {
    std::ofstream out(junk, std::ios::binary);
    out << "\x1f\x8b\x08\x00garbage that is not a gzip stream";
  }
  expect_model_error([&] { ClipTokenizer::from_bpe_gz(junk); }, junk);
  const std::string plain = ::testing::TempDir() + "sdgen_tokenizer_plain.txt";
  {
    std::ofstream out(plain);
    out << "#version: 0.2\ni n\nt h\n";
  }
  expect_model_error([&] { ClipTokenizer::from_bpe_gz(plain); }, plain);
  expect_model_error([&] { ClipTokenizer::from_vocab_merges(plain, plain); }, plain);
  expect_model_error([&] { ClipTokenizer::from_vocab_merges("/nonexistent/vocab.json", plain); },
                     "/nonexistent/vocab.json");
  // A vocabulary without the special tokens, and merges with no merge in them.
  const std::string vocab = ::testing::TempDir() + "sdgen_tokenizer_vocab.json";
  const std::string merges = ::testing::TempDir() + "sdgen_tokenizer_merges.txt";
  {
    std::ofstream(vocab) << R"({"a": 0, "b": 1, "ab</w>": 2})";
    std::ofstream(merges) << "#version: 0.2\n";
  }
  expect_model_error([&] { ClipTokenizer::from_vocab_merges(vocab, merges); }, vocab);
  {
    std::ofstream(vocab) << R"({"a": 0, "<|startoftext|>": 1, "<|endoftext|>": 2})";
  }
  expect_model_error([&] { ClipTokenizer::from_vocab_merges(vocab, merges); }, merges);
  for (const std::string& f : {junk, plain, vocab, merges}) std::remove(f.c_str());
}

// A few cleanup facts checked against Python by hand (python3: "ΑΣ Σ".lower() etc.).
TEST(TextClean, PythonLowerAndWhitespace) {
  using text::python_lower;
  using text::utf8_decode;
  using text::utf8_encode;
  EXPECT_EQ(utf8_encode(python_lower(utf8_decode("\xCE\x91\xCE\xA3 \xCE\xA3"))),  // "ΑΣ Σ" -> "ας σ"
            "\xCE\xB1\xCF\x82 \xCF\x83");
  EXPECT_EQ(utf8_encode(python_lower(utf8_decode("\xC4\xB0"))), "i\xCC\x87");  // İ -> i + U+0307
  EXPECT_EQ(utf8_encode(text::whitespace_clean(utf8_decode(" a\t\xC2\xA0 b\xE3\x80\x80"))), "a b");
}

}  // namespace
}  // namespace sdgen
