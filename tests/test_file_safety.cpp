// Files sd-gen creates are created exclusively, never through a symbolic link someone planted in the
// output folder (a shared /tmp), and our own temporaries left by a killed run are cleaned safely:
// only our naming pattern, only regular files, only when their process is gone.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "cli_fixture.h"
#include "io/file_write.h"
#include "io/safetensors.h"
#include "sdgen/error.h"

namespace {
using namespace cli_test;
class FileSafety : public CliTest {
 protected:
  bool is_link(const fs::path& p) { return fs::is_symlink(fs::symlink_status(p)); }
  // A pid that belonged to a process which has ended (a child reaped at once).
  static long dead_pid() {
    const pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    waitpid(child, &status, 0);
    return (long)child;
  }
};

// The reproducer of the hardening report: links planted under the names of the write test and of
// the first temporary PNG of the process that is about to start (bash's pid becomes sd-gen's by
// exec). Both targets stay as they were; the image is a regular PNG file; the links stay links.
TEST_F(FileSafety, PlantedLinksAreNeverWrittenThrough) {
  write("v1", "a\n");
  write("v2", "b\n");
  fs::create_directory(dir_ / "sh");
  const std::string script = "cd '" + dir_.string() + "' || exit 9\nexec bash -c 'ln -s \"$0/v1\" \"$0/sh/.sdgen-write-test-$$\"; " +
                             "ln -s \"$0/v2\" \"$0/sh/.sdgen-$$-0.tmp\"; exec \"$1\" -m \"$2\" -p cat -W 64 -H 64 " +
                             "--steps 1 --seed 1 --device cpu --name img -o \"$0/sh\"' '" + dir_.string() + "' '" +
                             SDGEN_CLI_PATH + "' '" + kModel + "' >'" + (dir_ / "out.txt").string() + "' 2>&1";
  write("run.sh", script + "\n");
  const int status = std::system(("OMP_WAIT_POLICY=PASSIVE SDGEN_MODEL= bash '" + (dir_ / "run.sh").string() + "'").c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir_ / "out.txt");
  EXPECT_EQ(slurp(dir_ / "v1"), "a\n");
  EXPECT_EQ(slurp(dir_ / "v2"), "b\n");
  const fs::path img = dir_ / "sh" / "img.png";
  ASSERT_TRUE(fs::exists(fs::symlink_status(img)));
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(img)));
  EXPECT_EQ(slurp(img).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  int links = 0, others = 0;
  for (auto& e : fs::directory_iterator(dir_ / "sh")) (is_link(e.path()) ? links : others) += 1;
  EXPECT_EQ(links, 2);   // the planted links are left alone (not ours to remove)
  EXPECT_EQ(others, 1);  // the image, and no temporary of ours
}

// In process: a new file is never opened over an existing file or through a link, dangling or not.
TEST_F(FileSafety, CreateExclusiveRefusesTakenNames) {
  write("target", "keep");
  fs::create_symlink(dir_ / "target", dir_ / "link");
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling");
  for (const char* name : {"target", "link", "dangling"}) {
    errno = 0;
    EXPECT_EQ(sdgen::create_exclusive((dir_ / name).string()), -1) << name;
    EXPECT_EQ(errno, EEXIST) << name;
  }
  EXPECT_EQ(slurp(dir_ / "target"), "keep");
  EXPECT_FALSE(fs::exists(dir_ / "nowhere"));
  const int fd = sdgen::create_exclusive((dir_ / "new").string());
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir_ / "new")));
}

// write_safetensors' temporary (path + ".tmp<pid>") is not written through a link either.
TEST_F(FileSafety, SafetensorsTemporaryNeverFollowsALink) {
  write("victim", "keep");
  const fs::path out = dir_ / "m.safetensors";
  fs::create_symlink(dir_ / "victim", out.string() + ".tmp" + std::to_string((long)getpid()));
  sdgen::StWriteTensor t;
  t.name = "w";
  t.dtype = sdgen::StDType::F32;
  t.shape = {1};
  t.bytes.assign(4, 0);
  try {
    sdgen::write_safetensors(out.string(), {t});
    FAIL() << "wrote through a planted link";
  } catch (const sdgen::Error& e) {
    EXPECT_EQ(e.code(), sdgen::ExitCode::kOutput);
  }
  EXPECT_EQ(slurp(dir_ / "victim"), "keep");
  EXPECT_FALSE(fs::exists(out));
}

// Stale temporaries: removed only when the name is ours, the file regular and its process gone.
TEST_F(FileSafety, StaleTemporariesOfDeadProcessesAreCleaned) {
  const std::string dead = std::to_string(dead_pid()), live = std::to_string((long)getppid());
  write("victim", "keep");
  const std::vector<std::string> removed = {".sdgen-" + dead + "-0.tmp", ".sdgen-" + dead + "-17.tmp",
                                            ".sdgen-write-test-" + dead};
  const std::vector<std::string> kept = {".sdgen-" + live + "-0.tmp",   // its process is alive
                                         ".sdgen-write-test-" + live,  // likewise
                                         ".sdgen-" + dead + "-0.tmp.bak", ".sdgen-x" + dead + "-0.tmp",
                                         ".sdgen-" + dead + "-a.tmp", "sdgen-" + dead + "-0.tmp", "user.png"};
  for (const std::string& n : removed) write(n, "x");
  for (const std::string& n : kept) write(n, "x");
  const std::string link = ".sdgen-" + dead + "-1.tmp";  // our pattern, but a link: never touched
  fs::create_symlink(dir_ / "victim", dir_ / link);
  EXPECT_EQ(sdgen::clean_stale_temporaries(dir_.string()), (int)removed.size());
  for (const std::string& n : removed) EXPECT_FALSE(fs::exists(fs::symlink_status(dir_ / n))) << n;
  for (const std::string& n : kept) EXPECT_TRUE(fs::exists(dir_ / n)) << n;
  EXPECT_TRUE(is_link(dir_ / link));
  EXPECT_EQ(slurp(dir_ / "victim"), "keep");
}

// Through the binary: a run into a folder holding a dead run's temporary cleans it and leaves the
// rest of the folder as it was.
TEST_F(FileSafety, RunCleansADeadRunsTemporary) {
  fs::create_directory(dir_ / "out");
  const std::string stale = ".sdgen-" + std::to_string(dead_pid()) + "-0.tmp";
  write("out/" + stale, "half a png");
  write("out/keep.txt", "mine");
  const Result r = run("-p cat --seed 1 --name img -o out");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out" / stale));
  EXPECT_EQ(slurp(dir_ / "out" / "keep.txt"), "mine");
  EXPECT_TRUE(fs::is_regular_file(dir_ / "out" / "img.png"));
}

// The manifest is appended to, never through a link: a link (to a file, or /dev/stdout's kind) is
// refused with one line and exit 4 before any model work, and its target is unchanged.
TEST_F(FileSafety, ManifestThroughALinkIsRefused) {
  write("real.jsonl", "");
  fs::create_symlink(dir_ / "real.jsonl", dir_ / "m.jsonl");
  const Result r = run("-p cat --seed 1 -o out --manifest m.jsonl");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("--manifest m.jsonl: is a symbolic link"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_EQ(slurp(dir_ / "real.jsonl"), "");
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  const Result dev = run("-p cat --seed 1 -o out --manifest /dev/null");
  EXPECT_EQ(dev.code, 4) << dev.err;
  EXPECT_NE(dev.err.find("not a regular file"), std::string::npos) << dev.err;
}

}  // namespace
