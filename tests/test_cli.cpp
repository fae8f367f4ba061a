// The sd-gen binary as a user runs it: bad input gives one clear line on stderr, the documented
// exit code (README: 2 usage, 3 model, 4 output), and leaves no file behind.
#include "cli_fixture.h"

namespace {

using namespace cli_test;

// Runs take exactly the arguments given (the tests here pass their own model and sizes).
class Cli : public CliTest {
 protected:
  Result run(const std::string& args) { return run_raw(args); }
  // Files in the work folder other than the ones the test made.
  int stray_files() {
    int n = 0;
    for (auto& e : fs::recursive_directory_iterator(dir_)) n += e.path().filename() != "model.safetensors" &&
                                                                   e.path().filename() != "prompts.txt" &&
                                                                   e.path().filename() != "afile";
    return n;
  }
  // An existing file standing in for a model: these checks fail before the model is read.
  std::string fake_model() {
    std::ofstream(dir_ / "model.safetensors") << "x";
    return (dir_ / "model.safetensors").string();
  }
};

TEST_F(Cli, VersionAndHelpSucceed) {
  Result v = run("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("sd-gen "), std::string::npos);
  Result h = run("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("--prompt"), std::string::npos);
  EXPECT_NE(h.out.find("--precision"), std::string::npos);
}

// --device auto on a machine where the GPU cannot be used runs on the CPU and says why once, on the
// first model's loading line (no extra line); a build without the CUDA backend has nothing to say.
TEST_F(Cli, DeviceAutoSaysOnceWhyItUsesTheCpu) {
  write("p.jsonl", "{\"prompt\": \"cat\"}\n{\"prompt\": \"dog\", \"precision\": \"fp16\"}\n");
  const Result r = run("-m '" + kModel + "' -W 64 -H 64 --steps 2 --device auto --prompt-file p.jsonl --seed 1 -o out");
  ASSERT_EQ(r.code, 0) << r.err;
  if (r.err.find("(fp32, cuda)") != std::string::npos) GTEST_SKIP() << "a GPU is usable here";
  size_t n = 0;
  for (size_t at = 0; (at = r.err.find("no GPU to use", at)) != std::string::npos; ++at) ++n;
#ifdef SDGEN_WITH_CUDA
  EXPECT_NE(r.err.find("(fp32, cpu; no GPU to use: "), std::string::npos) << r.err;
  EXPECT_EQ(n, 1u) << r.err;
  EXPECT_NE(r.err.find("(fp16, cpu)"), std::string::npos) << r.err;
#else
  EXPECT_EQ(n, 0u) << r.err;
#endif
}

TEST_F(Cli, WidthNotMultipleOf64IsUsageError) {
  Result r = run("--prompt cat --width 500 --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--width 500"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);
}

TEST_F(Cli, ZeroStepsIsUsageError) {
  Result r = run("--prompt cat --steps 0 --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--steps"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);
}

TEST_F(Cli, UnknownPrecisionIsUsageError) {
  Result r = run("--prompt cat --precision fp8 --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("precision"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);
}

TEST_F(Cli, BadRngOrSeedModeIsUsageError) {
  Result r = run("--prompt cat --rng cuda --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--rng 'cuda' is not one of torch-cpu, philox"), std::string::npos) << r.err;
  r = run("--prompt cat --seed-mode perimage --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--seed-mode 'perimage' is not one of batch, per-image"), std::string::npos) << r.err;
  std::ofstream(dir_ / "prompts.txt") << "{\"prompt\": \"x\", \"rng\": \"philox\", \"seed_mode\": \"per-image\"}\n"
                                      << "{\"prompt\": \"y\", \"seed_mode\": \"each\"}\n";
  r = run("--prompt-file prompts.txt --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("prompts.txt:2: --seed-mode 'each'"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);
  Result h = run("--help");
  EXPECT_NE(h.out.find("--rng"), std::string::npos);
  EXPECT_NE(h.out.find("--seed-mode"), std::string::npos);
}

TEST_F(Cli, MissingPromptIsUsageError) {
  Result r = run("--model " + fake_model());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
}

TEST_F(Cli, MissingModelIsModelError) {
  Result r = run("--prompt cat --model does/not/exist.safetensors --out out");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("does/not/exist.safetensors"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);
}

// No --model, no SDGEN_MODEL and nothing in weights/: says how to get one. (The binary also looks
// in the source tree's weights/, where a developer may have downloaded SD v1.5: then there is a
// model to find and this case cannot be made, so the test says it skipped instead of passing.)
TEST_F(Cli, NoModelAnywhereSaysHowToGetOne) {
  for (const char* f : {"v1-5-pruned-emaonly-fp16.safetensors", "v1-5-pruned-emaonly.safetensors"})
    if (fs::exists(fs::path(SDGEN_SOURCE_DIR) / "weights" / f))
      GTEST_SKIP() << "weights/" << f << " exists in the source tree";
  Result r = run("--prompt cat --out out");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("download_sd15.sh"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);
}

TEST_F(Cli, CorruptModelIsModelError) {
  Result r = run("--prompt cat --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(lines(r.err) - (int)(r.err.find("loading") != std::string::npos), 1) << r.err;
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);  // the output folder it made is gone again
}

TEST_F(Cli, UnwritableOutputIsOutputError) {
  std::ofstream(dir_ / "afile") << "not a folder";
  Result r = run("--prompt cat --model " + fake_model() + " --out afile");
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("afile"), std::string::npos) << r.err;
  Result r2 = run("--prompt cat --model " + fake_model() + " --out /proc/sdgen-cannot-be-here");
  EXPECT_EQ(r2.code, 4);
  EXPECT_EQ(lines(r2.err), 1) << r2.err;
  EXPECT_EQ(stray_files(), 0);
}

TEST_F(Cli, BadPromptFileLineNamesTheLine) {
  std::ofstream(dir_ / "prompts.txt") << "a plain prompt\n# a comment\n{\"prompt\": \"x\", \"steps\": 0}\n";
  Result r = run("--prompt-file prompts.txt --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("prompts.txt:3"), std::string::npos) << r.err;
  std::ofstream(dir_ / "prompts.txt") << "{\"prompt\": \"x\", \"stepz\": 3}\n";
  r = run("--prompt-file prompts.txt --model " + fake_model() + " --out out");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("stepz"), std::string::npos) << r.err;
  EXPECT_EQ(stray_files(), 0);
}

}  // namespace
