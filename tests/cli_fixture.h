// The sd-gen binary run as a batch script runs it, for the CLI tests: a fixture with a work folder
// per test, the tiny model on the CPU, and helpers to read what a run left.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_helpers.h"

namespace fs = std::filesystem;

namespace cli_test {

inline const std::string kModel = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";

using namespace test_helpers;
using Result = CliRun;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sdgen_cli_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // sd-gen in the work folder with the tiny model on the CPU (passive OpenMP waits: builds share
  // the cores). `args` follow the common ones and may override them.
  Result run(const std::string& args) { return run_raw(common(args) + args); }
  // sd-gen with exactly these arguments (no common options), in the work folder.
  Result run_raw(const std::string& args) { return run_sdgen(args, "OMP_WAIT_POLICY=PASSIVE SDGEN_MODEL=", dir_); }
  // The options every run here shares, less those `args` gives itself (CLI11 takes an option once).
  static std::string common(const std::string& args = "") {
    std::string c;
    if (args.find("-W ") == std::string::npos) c += "-W 64 -H 64 ";
    if (args.find("--steps") == std::string::npos) c += "--steps 2 ";
    if (args.find("--device") == std::string::npos) c += "--device cpu ";
    if (args.find("-m ") == std::string::npos) c += "-m '" + kModel + "' ";
    return c;
  }
  static int lines(const std::string& s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
  }
  // name -> bytes of every file in a folder.
  std::map<std::string, std::string> files(const fs::path& d) {
    std::map<std::string, std::string> m;
    if (!fs::exists(d)) return m;
    for (auto& e : fs::directory_iterator(d)) m[e.path().filename().string()] = slurp(e.path());
    return m;
  }
  // The manifest records as (identity, index, file name, PNG SHA-256): what must agree between runs
  // (timings and folders differ).
  std::multiset<std::string> records(const std::vector<fs::path>& manifests) {
    std::multiset<std::string> s;
    for (const fs::path& m : manifests) {
      std::ifstream in(m);
      for (std::string line; std::getline(in, line);) {
        const nlohmann::json r = nlohmann::json::parse(line);
        s.insert(r["job"].dump() + " " + std::to_string(r["index"].get<int>()) + " " +
                 fs::path(r["path"].get<std::string>()).filename().string() + " " + r["png_sha256"].get<std::string>());
      }
    }
    return s;
  }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name, std::ios::binary) << text; }
  fs::path dir_;
};

}  // namespace cli_test
