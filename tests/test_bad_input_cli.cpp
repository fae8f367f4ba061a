// The bad-input matrix through the binary, the cases not covered by test_batch_cli.cpp and
// test_cli.cpp: each gets one line naming what is wrong and where (the prompt-file line where
// there is one), its documented exit code, and leaves nothing half-made. Also the stop requests
// outside sampling (while a model loads, while the VAE decodes) and a file system that fills up
// in the middle of a batch.
#include <signal.h>

#include <cmath>
#include <cstring>

#include "cli_fixture.h"

namespace {
using namespace cli_test;
class BadInputCli : public CliTest {
 protected:
  // sd-gen in the background; `marker` awaited in its stderr (bounded: 120 s), then `sig` sent, and
  // the exit code and stderr returned. The common options come first, as in run().
  Result run_and_signal(const std::string& args, const std::string& marker, int sig) {
    const fs::path err = dir_ / "stderr.txt";
    // (cd first, on its own: "cd && cmd &" would put a subshell, not sd-gen, behind $!)
    const std::string script = "cd '" + dir_.string() + "' || exit 1\nOMP_WAIT_POLICY=PASSIVE SDGEN_MODEL= '" +
                               std::string(SDGEN_CLI_PATH) + "' " + common(args) + args + " 2>'" + err.string() +
                               "' </dev/null & pid=$!; i=0; while ! grep -q '" + marker + "' '" + err.string() +
                               "' && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; kill -" + std::to_string(sig) +
                               " $pid; wait $pid; exit $?";
    std::ofstream(dir_ / "run.sh") << script << "\n";
    const int status = std::system(("bash '" + (dir_ / "run.sh").string() + "'").c_str());
    return Result{WIFEXITED(status) ? WEXITSTATUS(status) : -1, "", slurp(err)};
  }
  // A copy of a tiny model file (and its sidecar) with the first bytes of `tensor`'s data replaced;
  // the data offset from the file's own header (8-byte length, JSON, data section).
  std::string damaged_copy(const std::string& file, const std::string& tensor, const std::string& bytes) {
    const std::string src = std::string(SDGEN_TEST_DATA) + "/tiny_sd/" + file;
    const std::string dst = (dir_ / file).string();
    fs::copy_file(src + ".json", dst + ".json");
    std::string all = slurp(src);
    uint64_t n = 0;
    std::memcpy(&n, all.data(), 8);
    const nlohmann::json h = nlohmann::json::parse(all.substr(8, n));
    EXPECT_TRUE(h.contains(tensor)) << tensor;
    all.replace(8 + n + h[tensor]["data_offsets"][0].get<uint64_t>(), bytes.size(), bytes);
    std::ofstream(dst, std::ios::binary) << all;
    return dst;
  }
};

// Prompt files that are not prompt files, and lines whose values cannot be used: usage errors
// naming file:line, before any model work (no output folder appears).
TEST_F(BadInputCli, PromptFileFormsAndValues) {
  fs::create_directories(dir_ / "adir");
  struct Case {
    std::string file_text;  // empty: the folder adir/ is given as the file
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"", "--prompt-file adir: is a folder, not a file"},
      {"\n\n", "no prompts in it"},
      {"# only\n  # comments\n", "no prompts in it"},
      {"a cat\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\",\n", "p.txt:3: not valid JSON"},
      {"{\"prompt\": \"a\", \"clip_skip\": 2.9}\n", "p.txt:1: \"clip_skip\" must be an integer"},
      {"{\"prompt\": \"a\", \"clip_skip\": true}\n", "p.txt:1: \"clip_skip\" must be an integer"},
      {"{\"prompt\": \"a\", \"lora\": 3}\n", "p.txt:1: \"lora\" must be a string or a list of strings"},
      {"{\"prompt\": \"a\", \"vae\": [\"x\"]}\n", "p.txt:1: \"vae\" must be a string"},
      {"a cat\n{\"prompt\": \"a\", \"model\": \"m\\u0000.safetensors\"}\n", "p.txt:2: \"model\" must be free of NUL"},
      {"a cat\n{\"prompt\": \"a\", \"out\": \"o\\u0000ut\"}\n", "p.txt:2: \"out\" must be free of NUL"},
      {std::string("a cat\nan \0 dog\n", 15), "p.txt:2: the line holds a NUL character"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expect);
    std::string file = "adir";
    if (!c.file_text.empty()) {
      write("p.txt", c.file_text);
      file = "p.txt";
    }
    const Result r = run("--prompt-file " + file + " --out out");
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out"));
  }
}

// A model or output folder that cannot be used on line 2 is reported with that line, before any
// image of line 1 is made; the exit code is the model's (3) or the output's (4).
TEST_F(BadInputCli, ModelAndFolderErrorsNameTheLine) {
  write("p.txt", "a cat\n{\"prompt\": \"b\", \"model\": \"nope.safetensors\"}\n");
  Result r = run("--prompt-file p.txt --out out");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("p.txt:2: --model nope.safetensors: no such file or folder"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  write("afile", "x");
  write("p.txt", "a cat\n{\"prompt\": \"b\", \"out\": \"afile\"}\n");
  r = run("--prompt-file p.txt --out out");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("p.txt:2: --out afile: exists and is not a folder"), std::string::npos) << r.err;
  EXPECT_TRUE(files(dir_ / "out").empty());

  // A model file that is damaged (not missing) fails when line 2's model loads: line 1's images
  // are kept (batch work keeps completed images), the error names the line and the file.
  write("bad.safetensors", std::string(64, 'x'));
  write("p.txt", "a cat\n{\"prompt\": \"b\", \"model\": \"bad.safetensors\"}\n");
  r = run("--prompt-file p.txt --out out2 --manifest m.jsonl");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("p.txt:2: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.safetensors"), std::string::npos) << r.err;
  EXPECT_EQ(files(dir_ / "out2").size(), 1u);
  EXPECT_EQ(lines(slurp(dir_ / "m.jsonl")), 1);
}

// A loop of symbolic links is said to be one, not "no such file".
TEST_F(BadInputCli, SymlinkLoopsAreNamed) {
  fs::create_symlink("loop_b", dir_ / "loop_a");
  fs::create_symlink("loop_a", dir_ / "loop_b");
  Result r = run("-p cat -m loop_a --out out");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("--model loop_a: a loop of symbolic links"), std::string::npos) << r.err;
  r = run("-p cat --out loop_a");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("--out loop_a: a loop of symbolic links"), std::string::npos) << r.err;
  r = run("-p cat --vae loop_a --out out");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("--vae loop_a: a loop of symbolic links"), std::string::npos) << r.err;
}

// NaN or Inf stored in a weight (fp32 NaN, fp16 +Inf) is refused at load naming the tensor: no
// black image, no output folder.
TEST_F(BadInputCli, NonFiniteWeightsAreModelErrors) {
  float nan = std::nanf("");
  std::string nan_bytes(4, '\0');
  std::memcpy(&nan_bytes[0], &nan, 4);
  const std::string tensor = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";
  std::string m = damaged_copy("tiny_sd.safetensors", tensor, nan_bytes);
  Result r = run("-p cat -m '" + m + "' --out out");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(lines(r.err), 2) << r.err;  // "loading ..." and the error
  EXPECT_NE(r.err.find("unet.down_blocks.0.resnets.0.conv1.weight' holds 1 non-finite value (NaN/Inf)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  const std::string inf16("\x00\x7c", 2);
  m = damaged_copy("tiny_sd_fp16.safetensors", "first_stage_model.decoder.conv_out.bias", inf16);
  r = run("-p cat -m '" + m + "' --precision fp16 --out out");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("vae.decoder.conv_out.bias' holds 1 non-finite value"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// SIGTERM while the model loads (full-size SD v1.5 with random weights: seconds to make) and
// while the VAE decodes (4 images at 512×512 after one step: a second on the CPU, several in a
// sanitized build; the signal follows the end of sampling within the wait loop's 50 ms) ends the run there with exit 130
// and nothing written; sampling's own stop is Pipeline.CliInterruptExits130.
TEST_F(BadInputCli, SigtermWhileLoadingOrDecoding) {
  Result r = run_and_signal("-p cat -m random:sd15 --out out", "loading", SIGTERM);
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_NE(r.err.find("interrupted by SIGTERM while loading the model"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  r = run_and_signal("-p cat -W 512 -H 512 --steps 1 --batch 4 --out out", "sampling:", SIGTERM);
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_NE(r.err.find("interrupted by SIGTERM while decoding"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// A second signal ends the process at once (the first one's handler restores the default action):
// during sampling, after the first SIGTERM the script waits until the kernel shows SIGTERM no longer caught
// (/proc/PID/status SigCgt), then sends the second, which must kill sd-gen by the signal (bash's
// wait: 128 + 15) instead of the run going on to its next stop point; nothing half-written stays.
TEST_F(BadInputCli, SecondSignalEndsTheProcess) {
  // No seed: "seed: N" is printed as sampling starts; 1.5 s later the run is inside a UNet step of
  // about a second (8 latents of 128×128), far from its next stop point.
  const std::string args = "-W 1024 -H 1024 --batch 4 --steps 100 -p cat --out out";
  const fs::path err = dir_ / "stderr.txt";
  const std::string script =
      "cd '" + dir_.string() + "' || exit 1\nOMP_WAIT_POLICY=PASSIVE SDGEN_MODEL= '" + std::string(SDGEN_CLI_PATH) +
      "' " + common(args) + args + " 2>'" + err.string() +
      "' </dev/null & pid=$!\ni=0; while ! grep -q 'seed:' '" + err.string() +
      "' && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done\nsleep 1.5\nkill -TERM $pid\nsleep 0.2\nkill -TERM $pid\n"
      "wait $pid; exit $?";
  std::ofstream(dir_ / "run.sh") << script << "\n";
  const int status = std::system(("bash '" + (dir_ / "run.sh").string() + "'").c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << "the stop's own code, not the signal's: " << slurp(err);
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  // No image was finished: the output folder this run made is removed again.
  EXPECT_FALSE(fs::exists(dir_ / "out")) << "the empty output folder stayed";
}

// A 100,000-character prompt runs: cut to 16 chunks of 75 tokens with one warning, exit 0.
TEST_F(BadInputCli, HundredThousandCharacterPrompt) {
  std::string p;
  while (p.size() < 100000) p += "a cat, ";
  write("p.txt", p + "\n");
  const Result r = run("--prompt-file p.txt --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("cut to 16"), std::string::npos) << r.err;
  EXPECT_EQ(files(dir_ / "out").size(), 1u);
}

// A diffusers folder without its scheduler config runs with SD v1's schedule, and the log says so
// (one line, before the weights); the image equals the complete folder's, whose config is SD v1's.
TEST_F(BadInputCli, FolderWithoutSchedulerConfigIsNoted) {
  fs::copy(std::string(SDGEN_TEST_DATA) + "/tiny_sd/diffusers", dir_ / "model", fs::copy_options::recursive);
  const Result full = run("-m model -p x --seed 3 -o a");
  EXPECT_EQ(full.code, 0) << full.err;
  EXPECT_EQ(full.err.find("scheduler_config.json"), std::string::npos) << full.err;
  fs::remove(dir_ / "model/scheduler/scheduler_config.json");
  const Result r = run("-m model -p x --seed 3 -o b");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: model: no scheduler/scheduler_config.json; sampling with SD v1's training schedule"),
            std::string::npos)
      << r.err;
  const auto a = files(dir_ / "a"), b = files(dir_ / "b");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a.begin()->second, b.begin()->second);
  // --quiet drops the progress, not the warning.
  const Result quiet = run("-m model -p x --seed 3 -o c --quiet");
  EXPECT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.rfind("warning: model: no scheduler/scheduler_config.json", 0), 0u) << quiet.err;
  EXPECT_EQ(lines(quiet.err), 1) << quiet.err;
}

// The file system fills up at image 5 of 8 (a tmpfs of four images' size, mounted in a user and
// mount namespace: a real ENOSPC from the kernel). The run stops with the output exit code naming
// the file system's error; images 1-4 are kept, complete and in the manifest; no temporary file
// is left. Skipped where unprivileged namespaces are not allowed.
TEST_F(BadInputCli, FileSystemFullMidBatch) {
  if (std::system("unshare -rm true >/dev/null 2>&1") != 0) GTEST_SKIP() << "unshare -rm is not allowed here";
  const std::string args = "-p cat --batch 8 --seed 7 --name 'img{n}' --manifest m.jsonl";
  Result r = run(args + " --out full_size");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<uint64_t> sizes;
  for (auto& [name, bytes] : files(dir_ / "full_size")) sizes.push_back(bytes.size());
  ASSERT_EQ(sizes.size(), 8u);
  uint64_t kb = 4;  // one page to spare: less than any image needs
  for (int i = 0; i < 4; ++i) kb += (sizes[i] + 4095) / 4096 * 4;
  ASSERT_GT(sizes[4], 4096u);
  fs::remove(dir_ / "m.jsonl");
  fs::create_directories(dir_ / "small");
  const std::string cmd = "cd '" + dir_.string() + "' && unshare -rm sh -c \"mount -t tmpfs -o size=" +
                          std::to_string(kb) + "k tmpfs small && OMP_WAIT_POLICY=PASSIVE SDGEN_MODEL= '" +
                          std::string(SDGEN_CLI_PATH) + "' " + common(args) + args +
                          " --out small 2>err.txt; echo \\$? > code.txt; ls -a small > listing.txt\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(std::stoi(slurp(dir_ / "code.txt")), 4) << slurp(dir_ / "err.txt");
  EXPECT_NE(slurp(dir_ / "err.txt").find("No space left on device"), std::string::npos) << slurp(dir_ / "err.txt");
  EXPECT_EQ(slurp(dir_ / "listing.txt"), ".\n..\nimg00000.png\nimg00001.png\nimg00002.png\nimg00003.png\n");
  EXPECT_EQ(lines(slurp(dir_ / "m.jsonl")), 4);
}

}  // namespace
