// Long prompts and A1111 emphasis (src/text/prompt_weights.h, prompt_chunks.h, conditioning.h):
//   - the parser and the chunker on cases whose weights and chunk boundaries are worked out by
//     hand from A1111's rules (comments give the reasoning);
//   - the conditioning of 54 prompts against tests/data/golden/prompts.safetensors, made by
//     tests/reference/make_prompt_goldens.py (an independent Python implementation over
//     transformers' CLIP);
//   - the pipeline and the CLI: a 200-token prompt gives the same images every time, and not
//     those of its first 75 tokens; --no-emphasis and the prompt file's "emphasis": false agree.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "text/clip.h"
#include "text/conditioning.h"
#include "text/prompt_chunks.h"
#include "text/prompt_weights.h"
#include "text/tokenizer.h"

#include "stb_image_static.h"

namespace fs = std::filesystem;
using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;
const std::string kModel = kData + "/tiny_sd/diffusers";
constexpr int kCat = 2368, kA = 320, kComma = 267;  // CLIP ids of "cat", "a", ","

const ClipTokenizer& tokenizer() {
  static const ClipTokenizer t =
      ClipTokenizer::from_vocab_merges(kModel + "/tokenizer/vocab.json", kModel + "/tokenizer/merges.txt");
  return t;
}
const Checkpoint& checkpoint() {
  static const std::unique_ptr<Checkpoint> c = Checkpoint::open(kModel);
  return *c;
}
const ClipTextEncoder& clip() {
  static const ClipTextEncoder e(checkpoint(), checkpoint().config().clip, DType::F32, Device::CPU);
  return e;
}

std::string repeat(const std::string& word, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + word;
  return s;
}
// [BOS] + text ids + EOS up to 77: one chunk as the rules build it.
std::vector<int> chunk_ids(const std::vector<int>& text) {
  std::vector<int> ids{ClipTokenizer::kBos};
  ids.insert(ids.end(), text.begin(), text.end());
  ids.resize(ClipTokenizer::kContext, ClipTokenizer::kEos);
  return ids;
}
std::vector<int> cats(int n) { return std::vector<int>(n, kCat); }
std::vector<int> operator+(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void expect_pieces(const std::string& prompt, const std::vector<PromptPiece>& want) {
  const std::vector<PromptPiece> got = parse_prompt_attention(prompt);
  ASSERT_EQ(got.size(), want.size()) << prompt;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].is_break, want[i].is_break) << prompt << " piece " << i;
    EXPECT_EQ(got[i].text, want[i].text) << prompt << " piece " << i;
    EXPECT_EQ(got[i].weight, want[i].weight) << prompt << " piece " << i;  // exact: the same products
  }
}
const PromptPiece kBreak{"", 1.0, true};

}  // namespace

TEST(PromptWeights, BracketsMultiply) {
  expect_pieces("a (red) house", {{"a ", 1.0}, {"red", 1.1}, {" house", 1.0}});
  expect_pieces("((red))", {{"red", 1.1 * 1.1}});
  expect_pieces("(((red)))", {{"red", 1.1 * 1.1 * 1.1}});
  expect_pieces("[blue] sky", {{"blue", 1 / 1.1}, {" sky", 1.0}});
  expect_pieces("[[blue]]", {{"blue", (1 / 1.1) * (1 / 1.1)}});
  // Inner first: [red] is 1/1.1, then the round bracket multiplies both runs by 1.1.
  expect_pieces("([red] house)", {{"red", (1 / 1.1) * 1.1}, {" house", 1.1}});
  // Two runs of the same weight merge into one text (tokenized together).
  expect_pieces("(a)(b)", {{"ab", 1.1}});
}

TEST(PromptWeights, ExplicitWeights) {
  expect_pieces("(cat:1.3) dog", {{"cat", 1.3}, {" dog", 1.0}});
  expect_pieces("(cat: 0.5 )", {{"cat", 0.5}});
  expect_pieces("(cat:-1)", {{"cat", -1.0}});
  expect_pieces("(cat:.7)", {{"cat", 0.7}});
  // The weight multiplies what the inner brackets gave: 1.1 · 0.8.
  expect_pieces("((cat) dog:0.8)", {{"cat", 1.1 * 0.8}, {" dog", 0.8}});
  // ":1.5" not followed by ")" is text; ":2)" closes the bracket with weight 2.
  expect_pieces("(cat:1.5:2)", {{"cat:1.5", 2.0}});
  // A colon without a number is text, inside the bracket.
  expect_pieces("(a:b) c", {{"a:b", 1.1}, {" c", 1.0}});
}

TEST(PromptWeights, EscapesAreLiteral) {
  expect_pieces("\\(a\\) \\[b\\]", {{"(a) [b]", 1.0}});
  expect_pieces("a\\\\b", {{"a\\b", 1.0}});
  expect_pieces("a\\b", {{"ab", 1.0}});  // a lone backslash is dropped, as in A1111
  expect_pieces("(\\(x\\))", {{"(x)", 1.1}});
}

TEST(PromptWeights, UnbalancedBracketsAreNeverAnError) {
  expect_pieces("a cat)", {{"a cat)", 1.0}});
  expect_pieces("a cat]", {{"a cat]", 1.0}});
  // An opener never closed applies to all the text after it.
  expect_pieces("a (cat", {{"a ", 1.0}, {"cat", 1.1}});
  expect_pieces("a [cat", {{"a ", 1.0}, {"cat", 1 / 1.1}});
  expect_pieces("((a) cat", {{"a", 1.1 * 1.1}, {" cat", 1.1}});
  // "]" does not close "(": it is text inside the open round bracket.
  expect_pieces("(a] cat", {{"a] cat", 1.1}});
  expect_pieces("a (cat:1.3 dog", {{"a ", 1.0}, {"cat:1.3 dog", 1.1}});
  // ":w)" with no "(" open is text.
  expect_pieces("cat:1.3) dog", {{"cat:1.3) dog", 1.0}});
  // Not a number: text (A1111 raises here), and the "(" stays open.
  expect_pieces("(cat:1.2.3) dog", {{"cat:1.2.3) dog", 1.1}});
  expect_pieces("()", {{"", 1.0}});
  expect_pieces("", {{"", 1.0}});
}

TEST(PromptWeights, Break) {
  expect_pieces("a cat BREAK a dog", {{"a cat", 1.0}, kBreak, {"a dog", 1.0}});
  expect_pieces("BREAK dog", {{"", 1.0}, kBreak, {"dog", 1.0}});
  // Not whole words, or not in capitals: text.
  expect_pieces("catBREAK dog BREAKs break", {{"catBREAK dog BREAKs break", 1.0}});
  expect_pieces("a_BREAK b", {{"a_BREAK b", 1.0}});
  // A bracket or colon is a word boundary; the empty run before BREAK stays its own piece (weight
  // 1 after "a"'s 1.1), as in A1111.
  expect_pieces("(a)BREAK:b", {{"a", 1.1}, {"", 1.0}, kBreak, {":b", 1.0}});
  // Inside brackets it still breaks, and the bracket weighs both sides.
  expect_pieces("(a BREAK b)", {{"a", 1.1}, kBreak, {"b", 1.1}});
}

TEST(PromptChunks, ShortPromptIsTheOldPaddedSequence) {
  for (const char* p : {"", "a photo of a cat", "a red house by the lake, oil painting", "cat: dog"}) {
    const auto chunks = chunk_prompt(tokenizer(), p);
    ASSERT_EQ(chunks.size(), 1u) << p;
    EXPECT_EQ(chunks[0].ids, tokenizer().encode_padded(p)) << p;
    EXPECT_TRUE(chunks[0].all_ones()) << p;
  }
}

TEST(PromptChunks, SeventyFiveTokensPerChunk) {
  auto c75 = chunk_prompt(tokenizer(), repeat("cat", 75));
  ASSERT_EQ(c75.size(), 1u);
  EXPECT_EQ(c75[0].ids, chunk_ids(cats(75)));
  auto c76 = chunk_prompt(tokenizer(), repeat("cat", 76));
  ASSERT_EQ(c76.size(), 2u);
  EXPECT_EQ(c76[0].ids, chunk_ids(cats(75)));
  EXPECT_EQ(c76[1].ids, chunk_ids(cats(1)));
  auto c300 = chunk_prompt(tokenizer(), repeat("cat", 300));
  ASSERT_EQ(c300.size(), 4u);
  for (const auto& c : c300) EXPECT_EQ(c.ids, chunk_ids(cats(75)));
  // Emphasis off chunks the same way.
  ChunkOptions off;
  off.emphasis = false;
  EXPECT_EQ(chunk_prompt(tokenizer(), repeat("cat", 151), off).size(), 3u);
}

TEST(PromptChunks, OverflowSplitsAfterANearbyComma) {
  // 70 cats, a comma (index 70), 10 cats: at the 76th token the chunk is full and its last comma
  // is 75 - 70 = 5 <= 20 tokens back, so the 4 cats after it move to the next chunk: 71 + 10.
  auto a = chunk_prompt(tokenizer(), repeat("cat", 70) + ", " + repeat("cat", 10));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].ids, chunk_ids(cats(70) + std::vector<int>{kComma}));
  EXPECT_EQ(a[1].ids, chunk_ids(cats(10)));
  // Comma at index 55: 75 - 55 = 20, still within reach: 56 tokens, then 40 cats.
  auto b = chunk_prompt(tokenizer(), repeat("cat", 55) + ", " + repeat("cat", 40));
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].ids, chunk_ids(cats(55) + std::vector<int>{kComma}));
  EXPECT_EQ(b[1].ids, chunk_ids(cats(40)));
  // Comma at index 54: 21 back, too far: a plain cut at 75 (54 + comma + 20), then the other 20.
  auto c = chunk_prompt(tokenizer(), repeat("cat", 54) + ", " + repeat("cat", 40));
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].ids, chunk_ids(cats(54) + std::vector<int>{kComma} + cats(20)));
  EXPECT_EQ(c[1].ids, chunk_ids(cats(20)));
  // A comma that arrives when the chunk is full starts the next chunk itself.
  auto d = chunk_prompt(tokenizer(), repeat("cat", 75) + ", cat");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[1].ids, chunk_ids(std::vector<int>{kComma, kCat}));
  // Backtrack 0 turns the rule off: the case of `a` is then a plain cut.
  ChunkOptions none;
  none.comma_backtrack = 0;
  auto e = chunk_prompt(tokenizer(), repeat("cat", 70) + ", " + repeat("cat", 10), none);
  EXPECT_EQ(e[0].ids, chunk_ids(cats(70) + std::vector<int>{kComma} + cats(4)));
}

TEST(PromptChunks, BreakAndWeights) {
  auto a = chunk_prompt(tokenizer(), "a cat BREAK cat");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].ids, chunk_ids({kA, kCat}));
  EXPECT_EQ(a[1].ids, chunk_ids({kCat}));
  // BREAK first closes an empty chunk; BREAK last adds none.
  auto b = chunk_prompt(tokenizer(), "BREAK cat BREAK");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].ids, empty_chunk(tokenizer()).ids);
  EXPECT_EQ(b[1].ids, chunk_ids({kCat}));
  // Weights follow their tokens; BOS, EOS and padding weigh 1.
  auto w = chunk_prompt(tokenizer(), "a (cat) [cat] (cat:0.5)");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].ids, chunk_ids({kA, kCat, kCat, kCat}));
  std::vector<float> want(77, 1.0f);
  want[2] = (float)1.1;
  want[3] = (float)(1 / 1.1);
  want[4] = 0.5f;
  EXPECT_EQ(w[0].weights, want);
  // Emphasis off: all literal, BREAK included, weights 1.
  ChunkOptions off;
  off.emphasis = false;
  auto l = chunk_prompt(tokenizer(), "a (cat) BREAK cat", off);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].ids, tokenizer().encode_padded("a (cat) BREAK cat"));
  EXPECT_TRUE(l[0].all_ones());
}

TEST(PromptEmphasis, RescaleKeepsTheMean) {
  // z = [[1, 2], [3, 4]], weights [1, 2]: weighted [[1, 2], [6, 8]], mean 17/4; the mean before is
  // 10/4, so every value is scaled by 10/17.
  std::vector<float> z{1, 2, 3, 4};
  apply_emphasis(z.data(), {1.0f, 2.0f}, 2);
  const double s = 10.0 / 17.0;
  const double want[] = {1 * s, 2 * s, 6 * s, 8 * s};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(z[i], want[i], 1e-6) << i;
  // All weights 1: untouched to the bit, where a rescale by mean/mean could round.
  std::vector<float> u{0.1f, 0.7f, -0.3f, 1e-3f}, u0 = u;
  apply_emphasis(u.data(), {1.0f, 1.0f}, 2);
  EXPECT_EQ(std::memcmp(u.data(), u0.data(), sizeof(float) * 4), 0);
}

// The fp32 bounds, three per chunk:
//   1. CLIP's hidden states before the emphasis: our CLIP and transformers' compute the same
//      float32 expressions up to summation order; the clip golden (tests/test_models.cpp, tol_f32)
//      bounds that by e = 1.5e-5 of the magnitude.
//   2. The emphasis alone, our apply_emphasis on the reference's own hidden states. It multiplies
//      by s = m0 / m1, the chunk's mean before and after weighting, and m1 can be a small
//      difference of large terms (the tiny model's hidden states average near 0), so an error d0,
//      d1 in the means reaches the result as, to first order,
//        |d(z·w·s)| <= e·|w|·|s| + |z·w|·|s|·(d0/|m0| + d1/|m1|)
//      with e = 0 here and d0, d1 the float32 rounding of the reference's means: <= 1e-6 of the
//      mean absolute value (pairwise summation of 77·hidden terms, log2(616) · 2^-24 ≈ 6e-7); plus
//      1e-6 of the result for the float32 products.
//   3. End to end: the same with e from 1 carried into z and the means (d0 = e + ..., d1 = e·max|w|
//      + ...).
// Measured: errors 10-100 times below these bounds; with the rescale left out, 53 of the 56 checks
// 2 and 3 make on the 28 weighted chunks fail.
double emphasis_bound(const float* z, const std::vector<float>& w, int64_t dim, double e) {
  const size_t n = w.size() * (size_t)dim;
  double m0 = 0, m1 = 0, a0 = 0, a1 = 0, zw_max = 0, w_max = 0;
  for (size_t t = 0; t < w.size(); ++t) {
    w_max = std::max(w_max, (double)std::fabs(w[t]));
    for (int64_t d = 0; d < dim; ++d) {
      const double v = z[t * dim + d], vw = v * w[t];
      m0 += v, m1 += vw, a0 += std::fabs(v), a1 += std::fabs(vw);
      zw_max = std::max(zw_max, std::fabs(vw));
    }
  }
  if (w_max == 1 && std::all_of(w.begin(), w.end(), [](float x) { return x == 1.0f; })) return e;
  m0 /= n, m1 /= n, a0 /= n, a1 /= n;
  const double s = std::fabs(m0 / m1);
  const double d0 = e + 1e-6 * a0, d1 = e * w_max + 1e-6 * a1;
  return e * w_max * s + zw_max * s * (d0 / std::fabs(m0) + d1 / std::fabs(m1));
}

double max_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}
double max_abs(const float* a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, (double)std::fabs(a[i]));
  return m;
}

TEST(PromptGolden, ConditioningMatchesA1111Reference) {
  std::ifstream in(kData + "/golden/prompts.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json meta = nlohmann::json::parse(in);
  const auto g = SafetensorsFile::open(kData + "/golden/prompts.safetensors");
  const auto& prompts = meta["prompts"];
  ASSERT_GE(prompts.size(), 40u);
  int multi = 0, weighted = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string text = prompts[i]["prompt"];
    const bool emphasis = prompts[i]["emphasis"];
    const std::string k = "p" + std::to_string(i);
    const StTensorInfo* ids_t = g->find(k + ".ids");
    ASSERT_NE(ids_t, nullptr) << k;
    std::vector<int64_t> ids64((size_t)ids_t->numel());
    std::memcpy(ids64.data(), g->data(*ids_t), ids64.size() * sizeof(int64_t));
    const std::vector<float> weights = g->to_floats(*g->find(k + ".weights"));
    const std::vector<float> cond = g->to_floats(*g->find(k + ".cond"));
    const std::vector<float> raw = g->to_floats(*g->find(k + ".z"));

    // The chunks: ids and weights exactly (the same double products, rounded once to float).
    ChunkOptions co;
    co.emphasis = emphasis;
    std::vector<int> ids;
    std::vector<float> ws;
    const std::vector<PromptChunk> chunks = chunk_prompt(tokenizer(), text, co);
    for (const PromptChunk& c : chunks) {
      ids.insert(ids.end(), c.ids.begin(), c.ids.end());
      ws.insert(ws.end(), c.weights.begin(), c.weights.end());
      weighted += !c.all_ones();
    }
    ASSERT_EQ(ids, std::vector<int>(ids64.begin(), ids64.end())) << k << ": " << text;
    ASSERT_EQ(ws, weights) << k << ": " << text;
    multi += chunks.size() > 1;

    // The whole conditioning, chunk by chunk.
    ConditioningOptions opt;
    opt.emphasis = emphasis;
    const Conditioning ours = encode_prompts(tokenizer(), clip(), {text}, opt);
    ASSERT_EQ(ours.hidden.size(), cond.size()) << k << ": " << text;
    const std::vector<float> our_raw = clip().forward(ids, (int)chunks.size()).to_floats();
    const size_t per = 77 * (size_t)ours.dim;
    for (size_t c = 0; c < chunks.size(); ++c) {
      const double e = 1.5e-5 * std::max(1.0, max_abs(raw.data() + c * per, per));
      EXPECT_LE(max_diff(our_raw.data() + c * per, raw.data() + c * per, per), e) << k << " chunk " << c;
      // The emphasis alone, on the reference's own hidden states: only the means' rounding differs.
      std::vector<float> z(raw.begin() + c * per, raw.begin() + (c + 1) * per);
      apply_emphasis(z.data(), chunks[c].weights, ours.dim);
      const double own = emphasis_bound(raw.data() + c * per, chunks[c].weights, ours.dim, 0) +
                         1e-6 * max_abs(cond.data() + c * per, per);
      const double own_err = max_diff(z.data(), cond.data() + c * per, per);
      EXPECT_LE(own_err, own) << k << " chunk " << c << ": " << text;
      // End to end.
      const double bound = emphasis_bound(raw.data() + c * per, chunks[c].weights, ours.dim, e);
      const double err = max_diff(ours.hidden.data() + c * per, cond.data() + c * per, per);
      EXPECT_LE(err, bound) << k << " chunk " << c << ": " << text;
    }
  }
  EXPECT_GE(multi, 15);     // the golden set does reach past one chunk
  EXPECT_GE(weighted, 20);  // and weighs many chunks
}

// Rows of one batch are padded to the longest with the empty prompt's chunk, and a 16-chunk cap.
TEST(PromptGolden, ShorterRowsPaddedWithEmptyChunks) {
  const std::string lng = repeat("cat", 151);  // 3 chunks
  const Conditioning both = encode_prompts(tokenizer(), clip(), {"a photo of a cat", lng});
  const Conditioning shrt = encode_prompts(tokenizer(), clip(), {"a photo of a cat"});
  const Conditioning empty = encode_prompts(tokenizer(), clip(), {""});
  const Conditioning alone = encode_prompts(tokenizer(), clip(), {lng});
  ASSERT_EQ(both.chunks, 3);
  ASSERT_EQ(both.rows, 2);
  const size_t chunk = 77 * (size_t)both.dim, row = 3 * chunk;
  const auto same = max_diff;
  EXPECT_LE(same(both.hidden.data(), shrt.hidden.data(), chunk), 1e-5);
  EXPECT_LE(same(both.hidden.data() + chunk, empty.hidden.data(), chunk), 1e-5);
  EXPECT_LE(same(both.hidden.data() + 2 * chunk, empty.hidden.data(), chunk), 1e-5);
  EXPECT_LE(same(both.hidden.data() + row, alone.hidden.data(), row), 1e-5);

  std::vector<std::string> warnings;
  const Conditioning capped = encode_prompts(tokenizer(), clip(), {repeat("cat", 75 * 17 + 1)}, {},
                                             [&](const std::string& s) { warnings.push_back(s); });
  EXPECT_EQ(capped.chunks, 16);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("18 chunks"), std::string::npos) << warnings[0];
}

TEST(PromptPipeline, LongPromptIsDeterministicAndNotTruncated) {
  static const char* kWords[] = {"cat", "dog", "red", "blue", "house", "tree", "sky", "river"};
  std::string lng, first75;
  for (int i = 0; i < 200; ++i) {
    lng += (i ? " " : "") + std::string(kWords[(i * 5 + i / 8) % 8]);
    if (i == 74) first75 = lng;
  }
  ASSERT_EQ(tokenizer().encode(lng).size(), 200u);
  ASSERT_EQ(tokenizer().encode(first75).size(), 75u);
  std::vector<std::string> log;
  Pipeline pipe(kModel, DType::F32, Device::CPU, [&](const std::string& s) { log.push_back(s); });
  GenerateParams p;
  p.prompt = lng;
  p.negative_prompt = "blurry";
  p.steps = 3;
  p.seed = 21;
  p.width = p.height = 64;
  const GeneratedBatch a = pipe.generate(p);
  const GeneratedBatch b = Pipeline(kModel, DType::F32, Device::CPU).generate(p);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.latents, b.latents);
  for (const std::string& line : log) EXPECT_EQ(line.find("warning"), std::string::npos) << line;
  p.prompt = first75;  // what the 77-token truncation used to give
  const GeneratedBatch t = pipe.generate(p);
  EXPECT_NE(t.latents, a.latents) << "the tokens after the 75th changed nothing";
  EXPECT_NE(t.images, a.images);
}

namespace {

std::vector<uint8_t> read_png_pixels(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".png") continue;
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load(e.path().c_str(), &w, &h, &c, 3);
    if (!px) return {};
    std::vector<uint8_t> v(px, px + (size_t)w * h * 3);
    stbi_image_free(px);
    return v;
  }
  return {};
}

}  // namespace

TEST(PromptCli, NoEmphasisFlagAndPromptFileKey) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_prompts_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string common = "'" + std::string(SDGEN_CLI_PATH) + "' -q --model '" + kModel +
                             "' --steps 2 -W 64 -H 64 --seed 3 ";
  auto run = [&](const std::string& args) {
    const std::string cmd = "cd '" + dir.string() + "' && " + common + args + " >/dev/null 2>err.txt";
    return std::system(cmd.c_str());
  };
  std::ofstream(dir / "p.jsonl") << R"({"prompt": "a (red:1.6) cat", "emphasis": false})" << "\n";
  ASSERT_EQ(run("--prompt 'a (red:1.6) cat' --out on"), 0);
  ASSERT_EQ(run("--prompt 'a (red:1.6) cat' --no-emphasis --out off"), 0);
  ASSERT_EQ(run("--prompt-file p.jsonl --out file"), 0);
  const auto on = read_png_pixels(dir / "on"), off = read_png_pixels(dir / "off"), file = read_png_pixels(dir / "file");
  ASSERT_FALSE(on.empty());
  EXPECT_EQ(off, file) << "--no-emphasis and \"emphasis\": false differ";
  EXPECT_NE(on, off) << "(red:1.6) weighted the same as the literal text";
  fs::remove_all(dir);
}
