// The sd-gen binary in unattended batch use (README "Batch runs"): nothing is ever overwritten,
// numbers are strict, an interrupted prompt-file run resumes from its manifest to the same images,
// and --shard parts add up to the single-process image set, byte for byte. The tiny model at
// 64×64 (a few lines at 192×192 where a run must last long enough to be interrupted).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

#include "cli_fixture.h"

namespace {
using namespace cli_test;
class BatchCli : public CliTest {};

TEST_F(BatchCli, NameWithoutNumberForSeveralImagesIsUsageError) {
  Result r = run("-p cat --batch 4 --name img --out out");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("gives img.png to both --prompt image 0 and --prompt image 1"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  write("p.txt", "a cat\na dog\n");
  r = run("--prompt-file p.txt --seed 1 --name 'img-{seed}' --out out");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("p.txt:1 image 0 and p.txt:2 image 0"), std::string::npos) << r.err;
  r = run("-p cat --batch 2 --name 'img-{i}' --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(files(dir_ / "out").size(), 2u);
}

TEST_F(BatchCli, NumberAnywhereIsNeverReused) {
  fs::create_directories(dir_ / "out");
  write("out/cat-00007.png", "an older image");
  write("out/cat-100000.png", "past 99999");
  Result r = run("-p cat --seed 1 --batch 2 --name 'cat-{n}' --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  r = run("-p cat --seed 2 --name 'cat-{n}' --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  const auto f = files(dir_ / "out");
  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(f.at("cat-00007.png"), "an older image");
  EXPECT_EQ(f.at("cat-100000.png"), "past 99999");
  for (const char* made : {"cat-100001.png", "cat-100002.png", "cat-100003.png"})
    EXPECT_EQ(f.count(made), 1u) << made;
}

// Two processes into one folder with the same seed, hence the same default name: one moves on to
// the next number; both images exist.
TEST_F(BatchCli, TwoProcessesNeverOverwriteEachOther) {
  const std::string one = "OMP_WAIT_POLICY=PASSIVE '" + std::string(SDGEN_CLI_PATH) + "' " + common() +
                          "-p cat --seed 4 --batch 3 --out out -q";
  write("three.sh", "cd '" + dir_.string() + "'\n" + one + " & p1=$!\n" + one + " & p2=$!\n" + one +
                        " & p3=$!\nwait $p1 && wait $p2 && wait $p3\n");
  ASSERT_EQ(std::system(("bash '" + (dir_ / "three.sh").string() + "'").c_str()), 0);
  const auto f = files(dir_ / "out");
  EXPECT_EQ(f.size(), 9u);
  std::set<std::string> numbers;
  for (const auto& [name, bytes] : f) numbers.insert(name.substr(0, 5));
  EXPECT_GE(numbers.size(), 3u);
}

TEST_F(BatchCli, FixedNameRerunKeepsIdenticalRefusesOther) {
  Result r = run("-p cat --seed 4 --name fixed --out out");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string first = slurp(dir_ / "out" / "fixed.png");
  r = run("-p cat --seed 4 --name fixed --out out");  // same image again: kept, not rewritten
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("already there, identical"), std::string::npos) << r.err;
  r = run("-p cat --seed 5 --name fixed --out out");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("not overwriting"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "out" / "fixed.png"), first);
  EXPECT_EQ(files(dir_ / "out").size(), 1u) << "a temp file was left";
}

TEST_F(BatchCli, SeedValues) {
  Result r = run("-p cat --seed -1 --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("seed: "), std::string::npos) << r.err;  // random, printed
  EXPECT_EQ(r.err.find("18446744073709551615"), std::string::npos) << r.err;
  for (const char* bad : {"''", "abc", "18446744073709551616", "-2", "1.5"}) {
    r = run(std::string("-p cat --out out2 --seed ") + bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  }
  r = run("-p cat --seed 18446744073709551615 --name 'm-{seed}' --out out3");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "out3" / "m-18446744073709551615.png"));
  EXPECT_FALSE(fs::exists(dir_ / "out2"));
}

TEST_F(BatchCli, PromptFileTypesNameFileLineAndKey) {
  for (const auto& [line, key] : std::vector<std::pair<std::string, std::string>>{
           {R"({"prompt": "x", "batch": 2.9})", "\"batch\""},
           {R"({"prompt": "x", "steps": true})", "\"steps\""},
           {R"({"prompt": "x", "steps": 1e10})", "\"steps\""},
           {R"({"prompt": "x", "width": 4294967360})", "\"width\""},
           {R"({"prompt": "x", "seed": "12"})", "\"seed\""}}) {
    write("p.txt", "a cat\n" + line + "\n");
    Result r = run("--prompt-file p.txt --out out");
    EXPECT_EQ(r.code, 2) << line << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("p.txt:2: " + key + " must be"), std::string::npos) << r.err;
  }
  // A byte-order mark before the first line's '{': still JSON (its bad "steps" is reported).
  write("p.txt", "\xEF\xBB\xBF{\"prompt\": \"x\", \"steps\": 0}\n");
  Result r = run("--prompt-file p.txt --out out");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("p.txt:1: --steps 0"), std::string::npos) << r.err;
  write("p.txt", "\xEF\xBB\xBF{\"prompt\": \"x\", \"name\": \"bom-{i}\"}\n");
  r = run("--prompt-file p.txt --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "bom-0.png")) << "the BOM line was taken as prompt text";
}

TEST_F(BatchCli, LongNames) {
  // 251 characters + ".png" is the longest file name there is: written (the temp name is short).
  Result r = run("-p cat --name " + std::string(251, 'a') + " --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "out" / (std::string(251, 'a') + ".png")));
  // One more byte is refused before any model is read (a model that cannot load shows it).
  write("broken.safetensors", "x");
  r = run("-p cat -m broken.safetensors --name " + std::string(252, 'a') + " --out out2");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--name gives file names of up to 256 bytes; the limit is 255"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out2"));
}

TEST_F(BatchCli, BatchOptionsUsageErrors) {
  struct Case {
    std::string args, says;
  };
  for (const Case& c : std::vector<Case>{
           {"-p cat --seed 1 --skip-existing", "--skip-existing needs --manifest FILE"},
           {"-p cat --shard 0/2", "--prompt: --shard needs a fixed seed"},
           {"-p cat --seed 1 --shard 2/2", "--shard '2/2' must be K/N with 0 <= K < N"},
           {"-p cat --seed 1 --shard 1", "--shard '1' must be K/N"},
           {"-p cat --seed 1 --batch 4 --shard 0/2", "--batch 4 in --seed-mode batch is one draw"},
           {"-p cat --device cuda:x", "--device 'cuda:x' is not one of auto, cpu, cuda, cuda:N"}}) {
    Result r = run(c.args + " --out out");
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  const Result h = run("--help");
  for (const char* opt : {"--manifest", "--skip-existing", "--shard", "cuda:N"})
    EXPECT_NE(h.out.find(opt), std::string::npos) << opt;
}

// Without the CUDA backend, or with fewer GPUs: the runtime exit code and why.
TEST_F(BatchCli, CudaDeviceNumberWithoutThatGpu) {
  Result r = run("-p cat --device cuda:7 --out out");
  EXPECT_EQ(r.code, 5) << r.err;
  EXPECT_NE(r.err.find("--device cuda:7: "), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("without the CUDA backend") != std::string::npos ||
              r.err.find("there is no CUDA device 7") != std::string::npos ||
              r.err.find("no CUDA device available") != std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// A prompt-file run killed by SIGTERM after its first image, rerun with --skip-existing: the same
// files, byte for byte, as one uninterrupted run, and the manifest records add up to its records.
TEST_F(BatchCli, KilledRunResumesToTheSameImages) {
  // Line 1 is quick; lines 2-4 take long enough (192×192, 3 steps) for the signal to land mid-run.
  write("p.txt",
        "{\"prompt\": \"a cat\", \"seed\": 1}\n"
        "{\"prompt\": \"a dog\", \"seed\": 2, \"width\": 192, \"height\": 192, \"steps\": 3}\n"
        "# a comment\n"
        "{\"prompt\": \"a house\", \"seed\": 3, \"batch\": 2, \"width\": 192, \"height\": 192, \"steps\": 3}\n"
        "{\"prompt\": \"a tree\", \"seed\": 4, \"batch\": 2, \"seed_mode\": \"per-image\", \"width\": 192, \"height\": 192, \"steps\": 3}\n");
  // The reference is planned too (--skip-existing on an empty manifest): a planned run makes each
  // image of a per-image batch alone, so any of them can be made again with the same bytes.
  Result whole = run("--prompt-file p.txt --manifest whole.jsonl --skip-existing --out whole");
  ASSERT_EQ(whole.code, 0) << whole.err;
  ASSERT_EQ(files(dir_ / "whole").size(), 6u);

  const std::string err = (dir_ / "killed.err").string();
  const std::string script =
      "cd '" + dir_.string() + "' || exit 1\nOMP_WAIT_POLICY=PASSIVE '" + std::string(SDGEN_CLI_PATH) + "' " + common() +
      "--prompt-file p.txt --manifest m.jsonl --skip-existing --out out 2>'" + err +
      "' & pid=$!; i=0; while [ \"$(cat m.jsonl 2>/dev/null | wc -l)\" -lt 1 ] && [ $i -lt 1200 ]; do sleep 0.01; "
      "i=$((i+1)); done; kill -TERM $pid; wait $pid; echo $? > '" + (dir_ / "code.txt").string() + "'";
  write("kill.sh", script + "\n");
  ASSERT_EQ(std::system(("bash '" + (dir_ / "kill.sh").string() + "'").c_str()), 0);
  EXPECT_EQ(std::stoi(slurp(dir_ / "code.txt")), 130) << slurp(err);
  EXPECT_NE(slurp(err).find("interrupted by SIGTERM"), std::string::npos) << slurp(err);
  const auto partial = files(dir_ / "out");
  ASSERT_GE(partial.size(), 1u);
  ASSERT_LT(partial.size(), 6u) << "the run ended before the signal: nothing was resumed";
  struct stat before;
  ASSERT_EQ(stat((dir_ / "out" / "00000-1-0.png").c_str(), &before), 0);

  const int recorded = lines(slurp(dir_ / "m.jsonl"));
  EXPECT_EQ(recorded, (int)partial.size()) << "every image written is recorded";
  Result resumed = run("--prompt-file p.txt --manifest m.jsonl --skip-existing --out out");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("skipping " + std::to_string(recorded) + " of 6 images"), std::string::npos)
      << resumed.err;
  struct stat after;
  ASSERT_EQ(stat((dir_ / "out" / "00000-1-0.png").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "a finished image was made again";
  EXPECT_EQ(files(dir_ / "out"), files(dir_ / "whole"));
  EXPECT_EQ(records({dir_ / "m.jsonl"}), records({dir_ / "whole.jsonl"}));

  // A finished image deleted: only it is made again, with the same bytes. Nothing left: no model load.
  fs::remove(dir_ / "out" / "00002-3-0.png");
  Result again = run("--prompt-file p.txt --manifest m.jsonl --skip-existing --out out");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("skipping 5 of 6 images"), std::string::npos) << again.err;
  EXPECT_EQ(files(dir_ / "out"), files(dir_ / "whole"));
  Result nothing = run("--prompt-file p.txt --manifest m.jsonl --skip-existing --out out");
  ASSERT_EQ(nothing.code, 0) << nothing.err;
  EXPECT_EQ(nothing.err.find("loading"), std::string::npos) << nothing.err;
  // A recorded image whose file now holds other bytes is neither skipped nor overwritten.
  write("out/00001-2-0.png", "edited by hand");
  Result edited = run("--prompt-file p.txt --manifest m.jsonl --skip-existing --out out");
  EXPECT_EQ(edited.code, 4) << edited.err;
  EXPECT_NE(edited.err.find("00001-2-0.png exists and holds another image; not overwriting"), std::string::npos)
      << edited.err;
  EXPECT_EQ(slurp(dir_ / "out" / "00001-2-0.png"), "edited by hand");
}

// 3 shards of a 5-line prompt file (a batch-mode batch and a per-image batch among them) give the
// files one process gives, byte for byte, and their manifests concatenate to its manifest.
TEST_F(BatchCli, ThreeShardsAddUpToOneProcess) {
  write("p.txt",
        "a cat\n"
        "{\"prompt\": \"a dog\", \"seed\": 9, \"batch\": 2}\n"
        "a house\n"
        "{\"prompt\": \"a tree\", \"batch\": 3, \"seed_mode\": \"per-image\", \"name\": \"tree-{n}-{seed}\"}\n"
        "{\"prompt\": \"the sea\", \"out\": \"other\"}\n");
  Result one = run("--prompt-file p.txt --seed 3 --shard 0/1 --manifest one.jsonl --out one");
  ASSERT_EQ(one.code, 0) << one.err;
  auto whole = files(dir_ / "one");
  for (auto& [name, bytes] : files(dir_ / "other")) whole.emplace("other/" + name, bytes);
  std::map<std::string, std::string> parts;
  std::vector<fs::path> manifests;
  for (int k = 0; k < 3; ++k) {
    fs::remove_all(dir_ / "other");
    Result r = run("--prompt-file p.txt --seed 3 --shard " + std::to_string(k) + "/3 --manifest m" +
                   std::to_string(k) + ".jsonl --out parts");
    ASSERT_EQ(r.code, 0) << r.err;
    manifests.push_back(dir_ / ("m" + std::to_string(k) + ".jsonl"));
    for (auto& [name, bytes] : files(dir_ / "parts")) parts.emplace(name, bytes);
    for (auto& [name, bytes] : files(dir_ / "other")) parts.emplace("other/" + name, bytes);
  }
  EXPECT_EQ(files(dir_ / "parts").size(), 7u);  // 1 + 2 + 1 + 3 in one folder
  EXPECT_EQ(parts.size(), 8u);
  for (auto& [name, bytes] : whole) {
    ASSERT_EQ(parts.count(name), 1u) << name;
    EXPECT_TRUE(parts[name] == bytes) << name << " differs";
  }
  EXPECT_EQ(records(manifests), records({dir_ / "one.jsonl"}));
  // The parts are disjoint: 8 records in all.
  EXPECT_EQ(records(manifests).size(), 8u);
}

// One --batch of 4 in per-image mode over 2 processes equals the same batch in one (planned) process.
TEST_F(BatchCli, ShardsOfOnePerImageBatch) {
  Result one = run("-p 'a red fox' --seed 11 --batch 4 --seed-mode per-image --shard 0/1 --out one");
  ASSERT_EQ(one.code, 0) << one.err;
  for (int k = 0; k < 2; ++k) {
    Result r = run("-p 'a red fox' --seed 11 --batch 4 --seed-mode per-image --shard " + std::to_string(k) +
                   "/2 --out parts");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(files(dir_ / "parts").size(), 2u * (k + 1));
  }
  EXPECT_EQ(files(dir_ / "parts"), files(dir_ / "one"));
  EXPECT_EQ(files(dir_ / "one").count("00003-14-3.png"), 1u);
}

// A part resumed with another K/N (Slurm's $SLURM_ARRAY_TASK_COUNT is 1 when one task is
// resubmitted alone) is refused: it would make the whole set into that part's manifest.
TEST_F(BatchCli, ResumingWithAnotherSplitIsRefused) {
  write("p.txt", "a cat\na dog\na house\n");
  Result r = run("--prompt-file p.txt --seed 1 --shard 2/3 --manifest m.jsonl --skip-existing --out out");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("--prompt-file p.txt --seed 1 --shard 0/1 --manifest m.jsonl --skip-existing --out out");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("m.jsonl holds images of --shard 2/3, this run is --shard 0/1"), std::string::npos) << r.err;
  EXPECT_EQ(files(dir_ / "out").size(), 1u);
  r = run("--prompt-file p.txt --seed 1 --shard 2/3 --manifest m.jsonl --skip-existing --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("skipping 1 of 1 images"), std::string::npos) << r.err;
}

}  // namespace

namespace {
// --json and --manifest with a prompt that is not UTF-8 (a Latin-1 file): the line is written with
// U+FFFD in its place instead of ending the run in an internal error after the first image.
TEST_F(BatchCli, JsonWithNonUtf8Prompt) {
  write("p.txt", "caf\xe9 au lait\nthe sea\n");
  Result r = run("--prompt-file p.txt --seed 2 --json --manifest m.jsonl --out out");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines(r.out), 2) << r.out;
  EXPECT_EQ(files(dir_ / "out").size(), 2u);
  std::ifstream in(dir_ / "m.jsonl");
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(nlohmann::json::parse(first)["prompt"], "caf\xEF\xBF\xBD au lait");
}

// The same for an output folder whose name is not UTF-8: both images are written into the folder
// as named, and each JSON line carries its path with U+FFFD in place of the byte.
TEST_F(BatchCli, JsonWithNonUtf8OutFolder) {
  const std::string folder = "d\xe9r";
  Result r = run("-p cat --batch 2 --seed 3 --json --out '" + folder + "'");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(files(dir_ / folder).size(), 2u);
  std::istringstream out(r.out);
  std::string line;
  int n = 0;
  while (std::getline(out, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("path").get<std::string>().rfind("d\xEF\xBF\xBDr/", 0), 0u) << line;
    ++n;
  }
  EXPECT_EQ(n, 2) << r.out;
}
}  // namespace
