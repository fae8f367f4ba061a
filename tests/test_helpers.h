// Helpers the test files share: a file's bytes, the message of an expected error, the sd-gen binary
// run with its output captured, and the channel-by-channel comparison of 8-bit images.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "sdgen/error.h"

namespace test_helpers {

namespace fs = std::filesystem;

// The bytes of a file ("" when it cannot be read).
inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The message of the sdgen::Error that f throws, which must be a model error (a test failure when
// it throws none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const sdgen::Error& e) {
    EXPECT_EQ(e.code(), sdgen::ExitCode::kModel) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

// The message of any sdgen::Error that f throws; "" when it throws none.
inline std::string any_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const sdgen::Error& e) {
    return e.what();
  }
  return "";
}

#ifdef SDGEN_CLI_PATH
struct CliRun {
  int code;
  std::string out, err;
};

// The sd-gen binary with `args` (stdin from /dev/null): `env` goes before it on the command line
// (VAR=value ...), `cwd` is the folder it runs in (empty: this process's). Its output is captured
// outside `cwd`, so that a test can count the files a run leaves there; capture_out=false leaves
// stdout alone (`args` may redirect it).
inline CliRun run_sdgen(const std::string& args, const std::string& env = "", const fs::path& cwd = {},
                        bool capture_out = true) {
  static int runs = 0;
  const fs::path base = fs::temp_directory_path() /
                        ("sdgen_run_" + std::to_string(getpid()) + "_" + std::to_string(runs++));
  const fs::path out = base.string() + ".out", err = base.string() + ".err";
  const std::string cd = cwd.empty() ? "" : "cd '" + cwd.string() + "' && ";
  const std::string cmd = cd + env + (env.empty() ? "'" : " '") + std::string(SDGEN_CLI_PATH) + "' " + args +
                          (capture_out ? " >'" + out.string() + "'" : std::string()) + " 2>'" + err.string() +
                          "' </dev/null";
  const int status = std::system(cmd.c_str());
  CliRun r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
  fs::remove(out);
  fs::remove(err);
  return r;
}

// sd-gen on the CPU, quiet; stderr captured, stdout where `args` sends it.
inline CliRun run_cli(const std::string& args) { return run_sdgen("--device cpu --quiet " + args, "", {}, false); }
#endif

// How two 8-bit images agree, channel by channel.
struct ImageDiff {
  double exact = 0;    // share of channels equal
  double within1 = 0;  // share of channels within ±1
  int worst = 0;       // largest difference
};
inline ImageDiff compare_u8(const uint8_t* a, const uint8_t* b, size_t n) {
  size_t same = 0, ok = 0;
  ImageDiff d;
  for (size_t i = 0; i < n; ++i) {
    const int x = std::abs((int)a[i] - (int)b[i]);
    same += x == 0;
    ok += x <= 1;
    d.worst = std::max(d.worst, x);
  }
  d.exact = (double)same / (double)n;
  d.within1 = (double)ok / (double)n;
  return d;
}

}  // namespace test_helpers
