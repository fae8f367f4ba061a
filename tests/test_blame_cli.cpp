// Each fault is blamed on what holds it, in words that say what it is: a broken LoRA or embedding
// names its file and option (not the model it would have damaged), an emphasis past any use names
// the prompt and its bracket nesting, a loop of symbolic links or a FIFO is called one, a tensor name
// holding NUL is shown escaped, a tiny config number is shown as written, sizes below 1 MiB are not
// "0 MiB", and JSON's -0 is seed 0. Every refusal is one line and the documented exit code.
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cli_fixture.h"
#include "io/safetensors.h"
#include "pipeline/memory_estimate.h"
#include "text/prompt_weights.h"

namespace {
using namespace cli_test;
using sdgen::StDType;
using sdgen::st_tensor_from_floats;

// A module of the tiny model's UNet (its first attention's to_q, a [16, 16] weight) in both namings.
const std::string kKohyaModule = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
const std::string kPeftModule = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

class Blame : public CliTest {
 protected:
  // One line on stderr holding `what` (besides the progress line naming the model being loaded,
  // for what is found while loading), and the exit code.
  void expect_refused(const Result& r, int code, const std::string& what) {
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(lines(r.err) - (int)(r.err.find("loading ") == 0), 1) << r.err;
    EXPECT_NE(r.err.find("sd-gen: error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << "wanted '" << what << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out")) << "a refused run made its output folder";
  }
  // A kohya LoRA of rank 4 on kKohyaModule: down [4, 16], up [16, 4], alpha.
  void write_kohya(const std::string& name, std::vector<float> down, std::vector<float> up, float alpha) {
    sdgen::write_safetensors((dir_ / name).string(),
                             {st_tensor_from_floats(kKohyaModule + ".lora_down.weight", StDType::F32, {4, 16}, down),
                              st_tensor_from_floats(kKohyaModule + ".lora_up.weight", StDType::F32, {16, 4}, up),
                              st_tensor_from_floats(kKohyaModule + ".alpha", StDType::F32, {}, {alpha})});
  }
};

TEST_F(Blame, BrokenLoraIsBlamedOnTheLora) {
  const std::vector<float> down(64, 0.1f), up(64, 0.1f);
  write_kohya("nan_alpha.safetensors", down, up, kNaN);
  expect_refused(run("-p cat -o out --lora nan_alpha.safetensors"), 3,
                 "--lora nan_alpha.safetensors: tensor '" + kKohyaModule + ".alpha' holds NaN");
  std::vector<float> bad_up = up;
  bad_up[5] = kInf;
  write_kohya("inf_up.safetensors", down, bad_up, 4.0f);
  expect_refused(run("-p cat -o out --lora inf_up.safetensors"), 3,
                 "--lora inf_up.safetensors: tensor '" + kKohyaModule + ".lora_up.weight' holds an infinity (element 5)");
  std::vector<float> bad_down = down;
  bad_down[63] = kNaN;
  write_kohya("nan_down.safetensors", bad_down, up, 4.0f);
  expect_refused(run("-p cat -o out --lora nan_down.safetensors"), 3,
                 "--lora nan_down.safetensors: tensor '" + kKohyaModule + ".lora_down.weight' holds NaN (element 63)");
  // Finite factors whose product passes float's range: 1e20 · 1e20 · rank 4 · alpha/rank 1.
  write_kohya("huge.safetensors", std::vector<float>(64, 1e20f), std::vector<float>(64, 1e20f), 4.0f);
  expect_refused(run("-p cat -o out --lora huge.safetensors"), 3,
                 "--lora huge.safetensors: '" + kKohyaModule + "' (alpha 4, rank 4, scale 1) would change its weight");
  // A PEFT adapter whose config gives rank 0: alpha/r would be infinite.
  sdgen::write_safetensors((dir_ / "r0.safetensors").string(),
                           {st_tensor_from_floats(kPeftModule + ".lora_A.weight", StDType::F32, {4, 16}, down),
                            st_tensor_from_floats(kPeftModule + ".lora_B.weight", StDType::F32, {16, 4}, up)},
                           {{"lora_adapter_metadata", R"({"unet.lora_alpha": 4, "unet.r": 0})"}});
  expect_refused(run("-p cat -o out --lora r0.safetensors"), 3,
                 "--lora r0.safetensors: lora_adapter_metadata unet.r is 0; the rank must be positive");
}

TEST_F(Blame, NonFiniteEmbeddingIsBlamedOnTheEmbedding) {
  std::vector<float> one(8, 0.5f);  // the tiny model's text encoder is 8 wide
  one[3] = kNaN;
  sdgen::write_safetensors((dir_ / "nan.safetensors").string(), {st_tensor_from_floats("emb_params", StDType::F32, {1, 8}, one)});
  expect_refused(run("-p 'a nan cat' -o out --embedding nan.safetensors"), 3,
                 "--embedding nan.safetensors: tensor 'emb_params' holds NaN (vector 0, element 3)");
  std::vector<float> two(16, 0.5f);
  two[9] = -kInf;
  sdgen::write_safetensors((dir_ / "inf.safetensors").string(), {st_tensor_from_floats("emb_params", StDType::F16, {2, 8}, two)});
  expect_refused(run("-p 'an inf cat' -o out --embedding inf.safetensors"), 3,
                 "--embedding inf.safetensors: tensor 'emb_params' holds an infinity (vector 1, element 1)");
}

TEST(PromptWeights, AbsurdWeightsAreNamed) {
  // 1.1^96 = 9412.34 is kept, 1.1^97 = 10353.6 is past 10^4; (x:10000) is the limit itself.
  EXPECT_EQ(sdgen::prompt_weight_problem(std::string(96, '(') + "cat" + std::string(96, ')')), "");
  EXPECT_EQ(sdgen::prompt_weight_problem("(cat:10000) [[dog]]"), "");
  EXPECT_EQ(sdgen::prompt_weight_problem(std::string(97, '(') + "cat"),  // never closed: applies all the same
            "emphasis gives a weight of 10353.6 (brackets nested 97 deep); weights beyond ±10000 are refused");
  EXPECT_EQ(sdgen::prompt_weight_problem("a (b:-20000) \\((c)\\)"),
            "emphasis gives a weight of -20000 (brackets nested 1 deep); weights beyond ±10000 are refused");
  // 1.1^7999 is past double's range, and the outer ":0)" makes that infinity NaN: refused too.
  EXPECT_EQ(sdgen::prompt_weight_problem(std::string(8000, '(') + "x" + std::string(7999, ')') + ":0)"),
            "emphasis gives a weight of NaN (brackets nested 8000 deep); weights beyond ±10000 are refused");
  // Square brackets only shrink: 1.1^-10000 is 0, a weight a prompt may give ("(x:0)").
  EXPECT_EQ(sdgen::prompt_weight_problem(std::string(10000, '[') + "x" + std::string(10000, ']')), "");
}

TEST_F(Blame, DeepEmphasisIsAUsageErrorNamingThePrompt) {
  // 1.1^10000 is past double's range: an infinite weight.
  const std::string deep = std::string(10000, '(') + "cat" + std::string(10000, ')');
  expect_refused(run("-p '" + deep + "' -o out"), 2,
                 "--prompt: emphasis gives a weight of inf (brackets nested 10000 deep)");
  expect_refused(run("-p cat -n '(x:20000)' -o out"), 2, "--negative-prompt: emphasis gives a weight of 20000");
  write("p.txt", "a dog\n" + deep + "\n");
  expect_refused(run("--prompt-file p.txt -o out"), 2, "p.txt:2: prompt: emphasis gives a weight of inf (brackets nested 10000 deep)");
  // 9999 · 1.1 · 1.1 = 12098.79.
  write("p.jsonl", "{\"prompt\": \"cat\", \"negative_prompt\": \"(((x:9999)))\"}\n");
  expect_refused(run("--prompt-file p.jsonl -o out"), 2, "p.jsonl:1: negative_prompt: emphasis gives a weight of 12098.8 (brackets nested 3 deep)");
}

TEST_F(Blame, SymlinkLoopOrDanglingLinkUnderOutIsNamed) {
  fs::create_symlink("b", dir_ / "a");
  fs::create_symlink("a", dir_ / "b");
  expect_refused(run("-p cat -o a"), 4, "--out a: a loop of symbolic links");
  expect_refused(run("-p cat -o a/x"), 4, "--out a/x: a loop of symbolic links");
  expect_refused(run("-p cat -o a/x/y"), 4, "--out a/x/y: a loop of symbolic links");
  // A link to nothing is no folder either: creating one there fails with "File exists", which
  // says nothing of the link.
  fs::create_symlink("nowhere", dir_ / "d");
  expect_refused(run("-p cat -o d"), 4, "--out d: " + (dir_ / "d").string() + " is a symbolic link to nowhere, which does not exist");
  expect_refused(run("-p cat -o d/x"), 4, "--out d/x: " + (dir_ / "d").string() + " is a symbolic link to nowhere");
}

TEST_F(Blame, FifoIsNotARegularFile) {
  ASSERT_EQ(::mkfifo((dir_ / "pipe").c_str(), 0600), 0);
  expect_refused(run("-p cat -o out --vae pipe"), 3, "--vae pipe: not a regular file or folder");
  expect_refused(run("-p cat -o out -m pipe"), 3, "--model pipe: not a regular file or folder");
  expect_refused(run("-p cat -o out --embedding pipe"), 3, "--embedding pipe: not a regular file");
}

TEST_F(Blame, NulInTensorNameIsShownEscaped) {
  // The header's key "a\u0000b\n" with a dtype no reader knows.
  const std::string header = R"({"a\u0000b\n":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}})";
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&file[0], &n, 8);
  write("nul.safetensors", file + header + std::string(4, '\0'));
  const Result r = run("-m nul.safetensors -p cat -o out");
  expect_refused(r, 3, "nul.safetensors: tensor 'a\\x00b\\x0a': unsupported dtype 'X9'");
  EXPECT_EQ(r.err.find('\0'), std::string::npos);
  EXPECT_EQ(sdgen::printable_tensor_name(std::string("x\0y\\z\x7f", 6)), "x\\x00y\\\\z\\x7f");
}

TEST_F(Blame, TinyConfigNumberIsShownAsWritten) {
  fs::copy(fs::path(SDGEN_TEST_DATA) / "tiny_sd" / "diffusers", dir_ / "model", fs::copy_options::recursive);
  const fs::path cfg = dir_ / "model" / "vae" / "config.json";
  nlohmann::json vae = nlohmann::json::parse(slurp(cfg));
  vae["scaling_factor"] = 1e-308;
  write("model/vae/config.json", vae.dump());
  expect_refused(run("-m model -p cat -o out"), 3,
                 "field 'scaling_factor' 1e-308 is below 1.17549e-38, the smallest normal float");
  vae["scaling_factor"] = -1e-7;
  write("model/vae/config.json", vae.dump());
  expect_refused(run("-m model -p cat -o out"), 3, "vae scaling_factor -1e-07 must be positive");
}

TEST_F(Blame, SizesBelowAMebibyteAreNotZero) {
  EXPECT_EQ(sdgen::format_bytes(1), "1 B");
  EXPECT_EQ(sdgen::format_bytes(1023), "1023 B");
  EXPECT_EQ(sdgen::format_bytes(3 * 1024), "3 KiB");
  EXPECT_EQ(sdgen::format_bytes(uint64_t(5) << 20), "5 MiB");
  const Result r = run("-p cat --max-memory 1 -o out");
  expect_refused(r, 5, "more than the 1 B of --max-memory");
  EXPECT_EQ(r.err.find(" 0 MiB"), std::string::npos) << r.err;
}

TEST_F(Blame, NegativeZeroSeedIsSeedZero) {
  // nlohmann reads -0 as the integer 0 (signed), the number 0: seed 0. -0.0 is no integer.
  write("p.jsonl", "{\"prompt\": \"cat\", \"seed\": -0, \"name\": \"s{seed}\"}\n");
  const Result ok = run("--prompt-file p.jsonl -o made -q");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(fs::exists(dir_ / "made" / "s0.png"));
  write("p.jsonl", "{\"prompt\": \"cat\", \"seed\": -0.0}\n");
  expect_refused(run("--prompt-file p.jsonl -o out"), 2, "p.jsonl:1: \"seed\" must be an integer 0..18446744073709551615, or -1 for a random seed, not -0.0");
}

}  // namespace
