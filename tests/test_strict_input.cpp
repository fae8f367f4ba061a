// Values that are not what they claim are refused, never coerced: numbers are decimal (no hex,
// hex floats, inf or nan, which C's and CLI11's conversions accept), the same for `sd-gen bench`;
// a JSON object with a key given twice (nlohmann keeps the last) is refused naming the key; a
// scheduler's explicit beta list, an empty --name, per-image seeds past 2^64-1 and a <lora:NAME>
// that is a path are refused. Each is one line and the documented exit code (2 usage, 3 model).
#include <cstdint>
#include <cstring>

#include "cli_fixture.h"
#include "core/decimal.h"
#include "core/json_unique.h"

namespace {
using namespace cli_test;
using sdgen::is_decimal_integer;
using sdgen::is_decimal_real;

TEST(Decimal, IntegersAndReals) {
  for (const char* s : {"0", "7", "-1", "+12", "0012", "18446744073709551616"}) EXPECT_TRUE(is_decimal_integer(s)) << s;
  for (const char* s : {"", "-", "+", "0x2", "1e1", "1.0", " 1", "1 ", "٣", "1_000", "--1"})
    EXPECT_FALSE(is_decimal_integer(s)) << s;
  for (const char* s : {"0", "7.5", "-0.25", "+.5", "5.", "1e3", "1E-3", "2.5e+2", "-0"}) EXPECT_TRUE(is_decimal_real(s)) << s;
  for (const char* s : {"", ".", "-.", "e3", "1e", "1e+", "0x10", "0x1p4", "inf", "-inf", "nan", "NaN", "1.5f", "1,5",
                        "1..2", "+-1"})
    EXPECT_FALSE(is_decimal_real(s)) << s;
}

TEST(JsonUniqueKeys, DuplicatesAreFoundAtAnyDepth) {
  std::string dup;
  const std::string ok = R"({"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]})";
  const nlohmann::json j = sdgen::parse_json_unique_keys(ok.begin(), ok.end(), &dup);
  EXPECT_TRUE(dup.empty());
  EXPECT_EQ(j["c"][1]["a"], 4);
  for (const auto& [text, key] : std::vector<std::pair<std::string, std::string>>{
           {R"({"steps": 2, "steps": 50})", "steps"},
           {R"({"x": {"k": 1, "k": 1}})", "k"},
           {R"([{"a": 1}, {"b": 1, "b": 2}])", "b"},
           {R"({"p": 1, "q": {"p": 2}, "p": 3})", "p"}}) {
    const nlohmann::json r = sdgen::parse_json_unique_keys(text.begin(), text.end(), &dup);
    EXPECT_EQ(dup, key) << text;
    EXPECT_TRUE(r.is_null()) << text;
  }
}

class StrictInput : public CliTest {
 protected:
  // One line on stderr holding `what` (besides the progress line naming the model being loaded,
  // for what is found while loading), and the exit code.
  void expect_refused(const Result& r, int code, const std::string& what) {
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(lines(r.err) - (int)(r.err.find("loading ") == 0), 1) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << "wanted '" << what << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out")) << "a refused run made its output folder";
  }
};

TEST_F(StrictInput, NumbersAreDecimalOnly) {
  expect_refused(run("-p cat -o out --steps 0x2"), 2, "--steps: '0x2' is not a decimal integer");
  expect_refused(run("-p cat -o out --batch 1e1"), 2, "--batch: '1e1' is not a decimal integer");
  expect_refused(run("-p cat -o out --guidance 0x10"), 2, "--guidance: '0x10' is not a decimal number");
  expect_refused(run("-p cat -o out --guidance inf"), 2, "'inf' is not a decimal number");
  expect_refused(run("-p cat -o out --sampler ddim --eta nan"), 2, "'nan' is not a decimal number");
  expect_refused(run("-p cat -o out -W 0x40"), 2, "'0x40' is not a decimal integer");
  write("f.safetensors", "");
  expect_refused(run("-p cat -o out --lora f.safetensors:0x10"), 2, "SCALE '0x10' is not a number");
  expect_refused(run("-p 'cat <lora:f:0x1p2>' -o out"), 2, "scale '0x1p2' is not a number");
}

TEST_F(StrictInput, BenchTakesTheSameNumbers) {
  for (const char* seed : {"-1", "18446744073709551616", "0x10", "-2", "1.5"}) {
    const Result r = run_raw(std::string("bench --device cpu -m '") + kModel + "' -b 1 --steps 1 -W 64 -H 64 -s " + seed);
    EXPECT_EQ(r.code, 2) << seed << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  }
  const Result steps = run_raw(std::string("bench --device cpu -m '") + kModel + "' -b 1 --steps 0x2 -W 64 -H 64");
  EXPECT_EQ(steps.code, 2) << steps.err;
  EXPECT_NE(steps.err.find("'0x2' is not a decimal integer"), std::string::npos) << steps.err;
}

TEST_F(StrictInput, DuplicateJsonKeysAreRefused) {
  write("p.jsonl", "{\"prompt\": \"cat\"}\n{\"prompt\": \"dog\", \"steps\": 2, \"steps\": 50}\n");
  expect_refused(run("--prompt-file p.jsonl -o out"), 2, "p.jsonl:2: key \"steps\" is given twice");

  // A safetensors file whose header names one tensor twice (8-byte length, then the JSON).
  const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&file[0], &n, 8);
  file += header + std::string(4, '\0');
  write("dup.safetensors", file);
  expect_refused(run("-m dup.safetensors -p cat -o out"), 3, "header names \"w\" twice");
}

TEST_F(StrictInput, SchedulerBetaListIsRefused) {
  const fs::path src = fs::path(SDGEN_TEST_DATA) / "tiny_sd" / "diffusers";
  fs::copy(src, dir_ / "model", fs::copy_options::recursive);
  nlohmann::json sched = nlohmann::json::parse(slurp(dir_ / "model" / "scheduler" / "scheduler_config.json"));
  sched["trained_betas"] = {0.1, 0.2};
  write("model/scheduler/scheduler_config.json", sched.dump());
  expect_refused(run("-m model -p cat -o out"), 3, "trained_betas");
  sched["trained_betas"] = nullptr;  // diffusers writes null when there is no list: accepted
  write("model/scheduler/scheduler_config.json", sched.dump());
  const Result ok = run("-m model -p cat --seed 1 -o out -q");
  EXPECT_EQ(ok.code, 0) << ok.err;
}

TEST_F(StrictInput, NamesSeedsAndLoraTags) {
  expect_refused(run("-p cat -o out --name ''"), 2, "--name is empty");
  expect_refused(run("-p cat -o out -b 2 --seed-mode per-image --seed 18446744073709551615"), 2,
                 "seeds image 1 past 2^64-1");
  const Result last = run("-p cat -o out -b 1 --seed-mode per-image --seed 18446744073709551615 -q");
  EXPECT_EQ(last.code, 0) << "batch 1 ends at 2^64-1 exactly: " << last.err;
  fs::remove_all(dir_ / "out");
  fs::create_directory(dir_ / "loras");
  write("x.safetensors", "");
  expect_refused(run("-p 'cat <lora:../x:1>' --lora-dir loras -o out"), 2, "NAME must be a file name inside --lora-dir");
  expect_refused(run("-p 'cat <lora:" + (dir_ / "x").string() + ":1>' --lora-dir loras -o out"), 2,
                 "NAME must be a file name inside --lora-dir");
}

}  // namespace
