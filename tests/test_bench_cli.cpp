// sd-gen bench as a user runs it, on the tiny test model: the JSON fields and their units,
// device-only figures null on the CPU, and bad arguments giving the usage exit code with one line.
// Nothing here asserts a speed: the figures are only checked for being consistent.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_helpers.h"

namespace fs = std::filesystem;

namespace {

using Result = test_helpers::CliRun;

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// In a folder of its own, on one OpenMP thread.
Result run_cli(const std::string& args) {
  const fs::path dir = fs::temp_directory_path() / ("sdgen_bench_" + std::to_string(getpid()));
  fs::create_directories(dir);
  Result r = test_helpers::run_sdgen(args, "SDGEN_MODEL= OMP_NUM_THREADS=1", dir);
  fs::remove_all(dir);
  return r;
}

const std::string kTiny = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";
const std::string kSmall = " --model '" + kTiny + "' --steps 2 --batch 1 --width 64 --height 64 ";

void expect_stats(const nlohmann::json& j, const char* field) {
  SCOPED_TRACE(field);
  ASSERT_TRUE(j.contains(field));
  const nlohmann::json& s = j.at(field);
  ASSERT_TRUE(s.is_object());
  const double med = s.at("median"), lo = s.at("min"), hi = s.at("max");
  EXPECT_GT(lo, 0.0);
  EXPECT_LE(lo, med);
  EXPECT_LE(med, hi);
}

TEST(BenchCli, JsonOnTheCpuHasEveryFieldInItsUnit) {
  const Result r = run_cli("bench --device cpu --json --repeats 1 --precision fp32,fp16,bf16" + kSmall);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("bench: fp32: warm-up"), std::string::npos) << "progress goes to stderr";
  ASSERT_EQ(lines(r.out), 3) << r.out;  // one object per configuration, nothing else on stdout
  std::istringstream in(r.out);
  std::string line;
  const char* expected_precision[] = {"fp32", "fp16", "bf16"};
  for (int k = 0; std::getline(in, line); ++k) {
    SCOPED_TRACE(line);
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("tool"), "sd-gen");
    EXPECT_EQ(j.at("device"), "cpu");
    EXPECT_EQ(j.at("precision"), expected_precision[k]);
    EXPECT_EQ(j.at("batch"), 1);
    EXPECT_EQ(j.at("steps"), 2);
    EXPECT_EQ(j.at("width"), 64);
    EXPECT_EQ(j.at("height"), 64);
    EXPECT_EQ(j.at("repeats"), 1);
    EXPECT_FLOAT_EQ(j.at("guidance").get<float>(), 7.5f);
    EXPECT_EQ(j.at("model"), "tiny_sd");
    // Device-only figures do not apply on the CPU.
    EXPECT_TRUE(j.at("cuda_graphs").is_null());
    EXPECT_TRUE(j.at("peak_device_bytes").is_null());

    for (const char* f : {"total_s", "text_s", "unet_per_step_s", "vae_s", "images_per_s", "mfu"})
      expect_stats(j, f);
    const double total = j.at("total_s").at("median");
    // With one repeat every statistic is that run.
    EXPECT_DOUBLE_EQ(j.at("total_s").at("min").get<double>(), j.at("total_s").at("max").get<double>());
    EXPECT_NEAR(j.at("images_per_s").at("median").get<double>(), 1 / total, 1e-9 / total);
    // The stages happen inside the total.
    const double stages = j.at("text_s").at("median").get<double>() +
                          2 * j.at("unet_per_step_s").at("median").get<double>() +
                          j.at("vae_s").at("median").get<double>();
    EXPECT_LE(stages, total * (1 + 1e-9));
    EXPECT_GT(j.at("weight_load_s").get<double>(), 0.0);

    EXPECT_EQ(j.at("peak_memory_kind"), "resident_set");
    EXPECT_GT(j.at("peak_memory_bytes").get<double>(), 1e6);  // at least the process itself
    EXPECT_EQ(j.at("peak_memory_bytes"), j.at("peak_rss_bytes"));

    const double clip = j.at("clip_flop"), unet = j.at("unet_flop_per_step"), vae = j.at("vae_flop");
    EXPECT_GT(clip, 0);
    EXPECT_GT(unet, 0);
    EXPECT_GT(vae, 0);
    EXPECT_NEAR(j.at("total_flop").get<double>(), clip + 2 * unet + vae, 1e-9 * (clip + 2 * unet + vae));
    const double peak = j.at("peak_flop_per_s");
    EXPECT_GT(peak, 1e9);  // any x86-64 core manages a GFLOP/s
    EXPECT_FALSE(j.at("peak_flop_per_s_source").get<std::string>().empty());
    const double mfu = j.at("mfu").at("median");
    EXPECT_NEAR(mfu, j.at("total_flop").get<double>() / total / peak, 1e-9);
    EXPECT_GT(mfu, 0.0);
    EXPECT_LT(mfu, 1.0);
  }
}

TEST(BenchCli, TableOnStdout) {
  const Result r = run_cli("bench --device cpu --repeats 1 --precision fp32 -q" + kSmall);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  for (const char* s : {"config", "total s", "UNet s/step", "peak RSS GB", "MFU", "fp32", "peak:"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

// Each bad argument: exit 2 (usage), one line "sd-gen: error: ...", nothing on stdout.
TEST(BenchCli, BadArgumentsAreUsageErrorsOfOneLine) {
  const std::string m = " --model '" + kTiny + "'";
  for (const std::string& args : {"bench --precision fp8" + m, "bench --precision fp32,fp8" + m,
                                 "bench --device cpu --cuda-graphs on" + m, "bench --batch 0" + m,
                                 "bench --repeats 0" + m, "bench --steps 0" + m, "bench --width 100" + m,
                                 "bench --no-such-option" + m, "bench --device tpu" + m}) {
    SCOPED_TRACE(args);
    const Result r = run_cli(args);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("sd-gen: error: ", 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST(BenchCli, MissingModelIsAModelError) {
  const Result r = run_cli("bench --device cpu --model /no/such/model.safetensors");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(lines(r.err), 1) << r.err;
}

}  // namespace
