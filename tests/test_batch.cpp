// The pieces of unattended batch runs (src/cli/batch.h, manifest.h) on their own: strict seeds and
// prompt-file values, names that never overwrite, the shard split, the model hash.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "cli/batch.h"
#include "cli/manifest.h"
#include "core/sha256.h"
#include "io/png_writer.h"
#include "sdgen/error.h"

namespace fs = std::filesystem;
using namespace sdgen;
using namespace sdgen::cli;

namespace {

// The usage error's message (fails the test when `f` does not throw one).
template <class F>
std::string usage_error(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("sdgen_batch_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<Job> jobs_from(const std::string& text, const TempDir& d) {
  std::ofstream(d.path / "p.txt") << text;
  return read_prompt_file((d.path / "p.txt").string(), Job());
}

}  // namespace

TEST(Batch, SeedText) {
  EXPECT_EQ(parse_seed_text("0", "--seed"), std::optional<uint64_t>(0));
  EXPECT_EQ(parse_seed_text("18446744073709551615", "--seed"), std::optional<uint64_t>(UINT64_MAX));
  EXPECT_EQ(parse_seed_text("-1", "--seed"), std::nullopt);  // random, as A1111 means it
  for (const char* bad : {"", "18446744073709551616", "99999999999999999999", "-2", "+5", "1e3", "12a", " 7", "0x10"})
    EXPECT_NE(usage_error([&] { parse_seed_text(bad, "--seed"); }).find("--seed '" + std::string(bad) + "'"),
              std::string::npos)
        << bad;
}

TEST(Batch, PromptFileValuesAreNotCoerced) {
  TempDir d;
  struct Case {
    const char* line;
    const char* key;
  };
  for (const Case& c : {Case{R"({"prompt": "x", "batch": 2.9})", "\"batch\" must be an integer"},
                        Case{R"({"prompt": "x", "steps": true})", "\"steps\" must be an integer"},
                        Case{R"({"prompt": "x", "steps": 1e10})", "\"steps\" must be an integer"},
                        Case{R"({"prompt": "x", "width": 4294967360})", "\"width\" must be an integer in the int range"},
                        Case{R"({"prompt": "x", "height": -4294967360})", "\"height\" must be an integer in the int range"},
                        Case{R"({"prompt": "x", "seed": "7"})", "\"seed\" must be an integer"},
                        Case{R"({"prompt": "x", "seed": 1.5})", "\"seed\" must be an integer"},
                        Case{R"({"prompt": "x", "seed": -2})", "\"seed\" must be an integer"},
                        Case{R"({"prompt": "x", "seed": 18446744073709551616})", "\"seed\" must be an integer"},
                        Case{R"({"prompt": "x", "guidance": "7"})", "\"guidance\" must be a number"},
                        Case{R"({"prompt": "x", "eta": false})", "\"eta\" must be a number"},
                        Case{R"({"prompt": 5})", "\"prompt\" must be a string"},
                        Case{R"({"prompt": "x", "name": null})", "\"name\" must be a string"}}) {
    const std::string msg = usage_error([&] { jobs_from("ok line\n" + std::string(c.line) + "\n", d); });
    EXPECT_NE(msg.find("p.txt:2: "), std::string::npos) << c.line << ": " << msg;
    EXPECT_NE(msg.find(c.key), std::string::npos) << c.line << ": " << msg;
  }
  std::vector<Job> ok = jobs_from(R"({"prompt": "x", "seed": -1, "steps": 3, "guidance": 7, "width": 128})"
                                  "\n"
                                  R"({"prompt": "y", "seed": 18446744073709551615})"
                                  "\n",
                                  d);
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_FALSE(ok[0].seed.has_value());
  EXPECT_EQ(ok[0].steps, 3);
  EXPECT_EQ(ok[0].width, 128);
  EXPECT_EQ(ok[0].guidance, 7.0f);
  EXPECT_EQ(ok[1].seed, std::optional<uint64_t>(UINT64_MAX));
}

TEST(Batch, ByteOrderMarkStartsAJsonLine) {
  TempDir d;
  std::vector<Job> jobs = jobs_from("\xEF\xBB\xBF{\"prompt\": \"a fox\", \"steps\": 3}\n\xEF\xBB\xBF" "a cat\n", d);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].prompt, "a fox");
  EXPECT_EQ(jobs[0].steps, 3);
  EXPECT_EQ(jobs[1].prompt, "a cat");
}

TEST(Batch, NamePatternChecks) {
  Job j;
  j.origin = "--prompt";
  j.name_pattern = std::string(251, 'x');  // + ".png" = 255 bytes: fits
  check_name_pattern(j);
  j.name_pattern = std::string(252, 'x');
  EXPECT_NE(usage_error([&] { check_name_pattern(j); }).find("up to 256 bytes; the limit is 255"), std::string::npos);
  j.name_pattern = std::string(240, 'x') + "-{i}";  // 240 + 1 + 1 + 4: fits
  check_name_pattern(j);
  j.name_pattern = std::string(231, 'x') + "{seed}";  // 231 + 20 digits + 4 = 255: fits; one more byte does not
  check_name_pattern(j);
  j.name_pattern = "x" + j.name_pattern;
  EXPECT_NE(usage_error([&] { check_name_pattern(j); }).find("up to 256 bytes"), std::string::npos);
  // {n} counts as its widest, 10 digits (2147483647): 241 + 10 + 4 = 255 fits, 242 does not (with
  // 5 digits it would have passed and failed at the rename of image 100000).
  j.name_pattern = std::string(241, 'x') + "{n}";
  check_name_pattern(j);
  j.name_pattern = std::string(242, 'x') + "{n}";
  EXPECT_NE(usage_error([&] { check_name_pattern(j); }).find("up to 256 bytes"), std::string::npos);
  j.name_pattern = std::string("a\0b", 3);
  EXPECT_NE(usage_error([&] { check_name_pattern(j); }).find("control characters"), std::string::npos);
}

TEST(Batch, NamesThatWouldCollideAreRefused) {
  Job j;
  j.origin = "--prompt";
  j.prompt = "cat";
  j.batch = 4;
  j.name_pattern = "img";
  EXPECT_NE(usage_error([&] { check_distinct_names({j}); }).find("gives img.png to both --prompt image 0 and --prompt image 1"),
            std::string::npos);
  j.name_pattern = "img-{seed}";  // batch mode: every image has the base seed
  j.seed = 5;
  usage_error([&] { check_distinct_names({j}); });
  j.seed_mode = SeedMode::PerImage;  // S+i tells them apart
  check_distinct_names({j});
  for (const char* ok : {"img-{i}", "{n}", "x{n}y"}) {
    j.name_pattern = ok;
    j.seed_mode = SeedMode::Batch;
    check_distinct_names({j});
  }
  // Two prompt-file lines with one fixed name in one folder; another folder is fine.
  Job a = j, b = j;
  a.batch = b.batch = 1;
  a.name_pattern = b.name_pattern = "same";
  a.origin = "p.txt:1";
  b.origin = "p.txt:2";
  EXPECT_NE(usage_error([&] { check_distinct_names({a, b}); }).find("p.txt:1 image 0 and p.txt:2 image 0"),
            std::string::npos);
  b.out_dir = "elsewhere";
  check_distinct_names({a, b});
  // Random seeds with {seed}: each job gets a distinct stand-in, so no false alarm.
  a.seed.reset();
  b.seed.reset();
  b.out_dir = a.out_dir;
  a.name_pattern = b.name_pattern = "r-{seed}";
  check_distinct_names({a, b});
}

TEST(Batch, FirstFreeNumberFindsNAnywhere) {
  TempDir d;
  const std::string dir = d.path.string();
  EXPECT_EQ(first_free_number(dir, "{n}-{seed}-{i}"), 0);
  for (const char* f : {"00004-7-0.png", "00002-9-1.png", "cat-00011.png", "cat-100000.png", "dog-00500.png",
                        "00099-notours.txt"})
    std::ofstream(d.path / f) << "x";
  EXPECT_EQ(first_free_number(dir, "{n}-{seed}-{i}"), 5);
  EXPECT_EQ(first_free_number(dir, "cat-{n}"), 100001);  // past 99999
  EXPECT_EQ(first_free_number(dir, "{prompt}-{n}.png"), 100001);
  EXPECT_EQ(first_free_number(dir, "dog-{n}"), 501);
  EXPECT_EQ(first_free_number(dir, "bird-{n}"), 0);
}

TEST(Batch, ExclusiveWriteNeverReplaces) {
  TempDir d;
  const std::string path = (d.path / "a.png").string();
  EXPECT_TRUE(write_file_exclusive(path, "one", 3));
  EXPECT_FALSE(write_file_exclusive(path, "two", 3));
  std::ifstream in(path);
  std::string have;
  in >> have;
  EXPECT_EQ(have, "one");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 1) << "a temp file was left";
  // Eight processes race for one name: exactly one gets it, none replaces it.
  const std::string raced = (d.path / "raced.png").string();
  std::vector<pid_t> kids;
  for (int p = 0; p < 8; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      const std::string mine = std::to_string(p);
      _exit(write_file_exclusive(raced, mine.data(), mine.size()) ? 0 : 1);
    }
    kids.push_back(pid);
  }
  int winners = 0;
  for (pid_t pid : kids) {
    int status = 0;
    waitpid(pid, &status, 0);
    winners += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 2);
}

TEST(Batch, PlacePngMovesOnOrKeepsIdenticalOrRefuses) {
  TempDir d;
  Job j;
  j.out_dir = d.path.string();
  j.name_pattern = "{n}-{seed}-{i}";
  const std::vector<uint8_t> png = {1, 2, 3}, other = {4, 5};
  std::ofstream(d.path / "00000-5-0.png") << "x";  // taken after the folder was read
  int n = 0;
  bool there = true;
  EXPECT_EQ(place_png(j, &n, false, 5, 0, png, &there), (d.path / "00001-5-0.png").string());
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(there);
  // Planned numbers are fixed: identical bytes are kept, other bytes refused.
  n = 1;
  EXPECT_EQ(place_png(j, &n, true, 5, 0, png, &there), (d.path / "00001-5-0.png").string());
  EXPECT_TRUE(there);
  try {
    place_png(j, &n, true, 5, 0, other, &there);
    ADD_FAILURE() << "overwrote";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutput);
    EXPECT_NE(std::string(e.what()).find("not overwriting"), std::string::npos) << e.what();
  }
  j.name_pattern = "fixed";
  n = 0;
  EXPECT_EQ(place_png(j, &n, false, 5, 0, other, &there), (d.path / "fixed.png").string());
  EXPECT_FALSE(there);
  EXPECT_THROW(place_png(j, &n, false, 5, 0, png, &there), Error);
}

TEST(Batch, ShardsPartitionTheImageSet) {
  std::vector<Job> jobs(5);
  jobs[1].batch = 3;  // batch mode: one unit
  jobs[3].batch = 4;
  jobs[3].seed_mode = SeedMode::PerImage;  // four units
  std::set<ImageRef> all;
  for (size_t k = 0; k < jobs.size(); ++k)
    for (int i = 0; i < jobs[k].batch; ++i) all.insert({k, i});
  for (int n = 1; n <= 12; ++n) {
    std::set<ImageRef> seen;
    size_t units_max = 0, units_min = 100;
    for (int k = 0; k < n; ++k) {
      std::vector<ImageRef> part = shard_images(jobs, {k, n});
      std::set<size_t> batch_jobs;
      size_t units = 0;
      for (const ImageRef& r : part) {
        EXPECT_TRUE(seen.insert(r).second) << "image in two parts, n=" << n;
        if (jobs[r.job].seed_mode == SeedMode::PerImage) ++units;
        else if (batch_jobs.insert(r.job).second) ++units;
      }
      // A batch-mode job never splits.
      for (size_t bj : batch_jobs)
        for (int i = 0; i < jobs[bj].batch; ++i)
          EXPECT_TRUE(std::find_if(part.begin(), part.end(), [&](const ImageRef& r) {
                        return r.job == bj && r.index == i;
                      }) != part.end());
      units_max = std::max(units_max, units);
      units_min = std::min(units_min, units);
    }
    EXPECT_EQ(seen, all) << "n=" << n;
    EXPECT_LE(units_max - units_min, 1u) << "parts differ by more than one unit, n=" << n;
  }
  std::vector<Job> one(1);
  one[0].batch = 4;
  EXPECT_NE(usage_error([&] { shard_images(one, {0, 2}); }).find("--seed-mode per-image"), std::string::npos);
  EXPECT_EQ(shard_images(one, {0, 1}).size(), 4u);
}

TEST(Batch, ShardText) {
  EXPECT_EQ(parse_shard("0/1").n, 1);
  EXPECT_EQ(parse_shard("3/4").k, 3);
  for (const char* bad : {"4/4", "1/0", "-1/4", "1", "a/b", "1/4/2", "", "1/"})
    EXPECT_NE(usage_error([&] { parse_shard(bad); }).find("0-based"), std::string::npos) << bad;
}

TEST(Batch, PlanCallsGroupsContiguousPerImageRuns) {
  std::vector<Job> jobs(2);
  jobs[0].batch = 3;
  jobs[1].batch = 6;
  jobs[1].seed_mode = SeedMode::PerImage;
  const std::vector<ImageRef> todo = {{0, 2}, {1, 0}, {1, 1}, {1, 3}, {1, 4}, {1, 5}};
  const std::vector<Call> calls = plan_calls(jobs, todo, false);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].first, 0);  // a batch-mode job is made whole, only image 2 written
  EXPECT_EQ(calls[0].count, 3);
  EXPECT_EQ(calls[0].write, std::vector<int>{2});
  EXPECT_EQ(calls[1].first, 0);
  EXPECT_EQ(calls[1].count, 2);
  EXPECT_EQ(calls[2].first, 3);
  EXPECT_EQ(calls[2].count, 3);
  EXPECT_EQ(calls[2].write, (std::vector<int>{3, 4, 5}));
  // Planned: each image of a per-image job alone; the batch-mode job still whole.
  const std::vector<Call> alone = plan_calls(jobs, todo, true);
  ASSERT_EQ(alone.size(), 6u);
  EXPECT_EQ(alone[0].count, 3);
  for (size_t c = 1; c < alone.size(); ++c) {
    EXPECT_EQ(alone[c].count, 1);
    EXPECT_EQ(alone[c].first, todo[c].index);
    EXPECT_EQ(alone[c].write, std::vector<int>{todo[c].index});
  }
}

TEST(Batch, OneGpuPerProcess) {
  std::vector<Job> jobs(3);
  jobs[0].device = {DeviceSpec::Cuda, 1};
  jobs[1].device = {DeviceSpec::Cpu, -1};
  jobs[2].device = {DeviceSpec::Cuda, 1};
  check_one_gpu(jobs);
  jobs[2].device = {DeviceSpec::Cuda, 0};
  jobs[2].origin = "p.txt:3";
  EXPECT_NE(usage_error([&] { check_one_gpu(jobs); }).find("p.txt:3: --device cuda:0: this run already uses cuda:1"),
            std::string::npos);
  EXPECT_EQ(cuda_ordinal("cuda:12"), 12);
  for (const char* bad : {"cuda", "cuda:", "cuda:x", "cuda:-1", "cuda:1a", "gpu:0"}) EXPECT_EQ(cuda_ordinal(bad), -1) << bad;
}

// The folder hash is the documented sha256sum pipeline, computed here by coreutils.
TEST(Batch, ModelHashOfFolderIsTheSha256sumListing) {
  if (std::system("command -v sha256sum >/dev/null 2>&1") != 0) GTEST_SKIP() << "no sha256sum";
  TempDir d;
  fs::create_directories(d.path / "m" / "unet");
  fs::create_directories(d.path / "m" / "B");
  std::ofstream(d.path / "m" / "model_index.json") << "{}";
  std::ofstream(d.path / "m" / "unet" / "w.bin") << "weights";
  std::ofstream(d.path / "m" / "B" / "x") << "upper case sorts first";
  std::ofstream(d.path / "m" / "a b.txt") << "a space";
  const std::string cmd = "cd '" + (d.path / "m").string() +
                          "' && find -L . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char want[65] = {};
  ASSERT_EQ(std::fread(want, 1, 64, p), 64u);
  pclose(p);
  EXPECT_EQ(model_sha256((d.path / "m").string()), std::string(want));
  std::ofstream(d.path / "m" / "unet" / "w.bin") << "changed";
  EXPECT_NE(model_sha256((d.path / "m").string()), std::string(want));
}

TEST(Batch, ManifestRecordsAndVerifies) {
  TempDir d;
  const std::string mpath = (d.path / "m.jsonl").string();
  Job j;
  j.prompt = "cat";
  j.origin = "p.txt:4";
  const nlohmann::json id = job_identity(j, 9, "abc");
  EXPECT_EQ(id["line"], 4);
  const std::vector<uint8_t> png = {7, 7, 7};
  std::ofstream(d.path / "img.png", std::ios::binary).write("\7\7\7", 3);
  {
    Manifest m(mpath, nullptr);
    EXPECT_FALSE(m.done(id, 0, d.path.string()));
    m.append({{"job", id}, {"index", 0}, {"path", (d.path / "img.png").string()},
              {"png_sha256", sha256_hex(png.data(), png.size())}});
  }
  // A line cut short by a crash, then a new record: both survive as separate lines.
  { std::ofstream(mpath, std::ios::app) << "{\"job\": {\"li"; }
  std::vector<std::string> warnings;
  {
    Manifest m(mpath, [&](const std::string& w) { warnings.push_back(w); });
    EXPECT_EQ(warnings.size(), 1u);
    EXPECT_TRUE(m.done(id, 0, d.path.string()));
    EXPECT_FALSE(m.done(id, 1, d.path.string()));
    Job other = j;
    other.steps = 30;
    EXPECT_FALSE(m.done(job_identity(other, 9, "abc"), 0, d.path.string()));
    EXPECT_FALSE(m.done(job_identity(j, 10, "abc"), 0, d.path.string()));
    EXPECT_FALSE(m.done(job_identity(j, 9, "abd"), 0, d.path.string()));
    m.append({{"job", id}, {"index", 1}, {"path", "nowhere.png"}, {"png_sha256", "00"}});
  }
  std::ifstream in(mpath);
  int good = 0;
  for (std::string line; std::getline(in, line);) good += nlohmann::json::accept(line);
  EXPECT_EQ(good, 2);
  std::ofstream(d.path / "img.png", std::ios::binary) << "edited";  // another image now: not done
  Manifest m(mpath, nullptr);
  EXPECT_FALSE(m.done(id, 0, d.path.string()));
}

// One writer per manifest; records tied to their output folder (another --out is a usage error,
// a file outside the folder never counts, even with matching bytes); paths that are not UTF-8 are
// kept byte for byte.
TEST(Batch, ManifestLockFolderAndBytes) {
  TempDir d;
  const std::string mpath = (d.path / "m.jsonl").string();
  Job j;
  j.prompt = "cat";
  const nlohmann::json id = job_identity(j, 9, "abc");
  const std::string dir = (d.path / "out\xff\xfe").string();  // not UTF-8
  fs::create_directory(dir);
  const std::string img = dir + "/img.png";
  std::ofstream(img, std::ios::binary) << "png!";
  const std::string sha = sha256_hex(reinterpret_cast<const uint8_t*>("png!"), 4);
  {
    Manifest m(mpath, nullptr);
    try {
      Manifest second(mpath, nullptr);
      ADD_FAILURE() << "a second writer opened the manifest";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kOutput);
      EXPECT_NE(std::string(e.what()).find("another sd-gen is writing it"), std::string::npos) << e.what();
    }
    nlohmann::json rec = {{"job", id}, {"index", 0}, {"png_sha256", sha}};
    set_record_paths(rec, img, dir);
    EXPECT_TRUE(rec.contains("path_hex") && rec.contains("out_dir_hex")) << rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    m.append(rec);
    // The same bytes outside the folder (an edited record): not done.
    std::ofstream(d.path / "elsewhere.png", std::ios::binary) << "png!";
    nlohmann::json outside = {{"job", id}, {"index", 1}, {"png_sha256", sha}};
    set_record_paths(outside, (d.path / "elsewhere.png").string(), dir);
    m.append(outside);
  }
  Manifest m(mpath, nullptr);  // the first writer is gone: the lock went with it
  EXPECT_TRUE(m.done(id, 0, dir)) << "the non-UTF-8 path did not come back byte for byte";
  EXPECT_FALSE(m.done(id, 1, dir));
  try {
    m.done(id, 0, (d.path / "other").string());
    ADD_FAILURE() << "a manifest of another --out was taken for this one";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("this run writes to"), std::string::npos) << e.what();
  }
}
