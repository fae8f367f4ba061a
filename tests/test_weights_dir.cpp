// The weights/ lookup (io/weights_dir.h): ./weights first, then the program's folder, each folder
// for every name in turn.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/weights_dir.h"

namespace fs = std::filesystem;

namespace sdgen {
namespace {

class WeightsDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sdgen_weights_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "cwd" / "weights");
    fs::create_directories(root_ / "program" / "weights");
    saved_cwd_ = fs::current_path();
    saved_fallback_ = weights_fallback_dir();
    fs::current_path(root_ / "cwd");
    set_weights_fallback_dir((root_ / "program" / "weights").string());
  }
  void TearDown() override {
    fs::current_path(saved_cwd_);
    set_weights_fallback_dir(saved_fallback_);
    fs::remove_all(root_);
  }
  void touch(const fs::path& p) { std::ofstream(p) << "x"; }
  fs::path root_, saved_cwd_;
  std::string saved_fallback_;
};

TEST_F(WeightsDir, WorkingDirectoryFirstThenTheProgramsFolder) {
  EXPECT_EQ(find_weights_file({"a.bin"}), "");
  touch(root_ / "program" / "weights" / "a.bin");
  EXPECT_EQ(find_weights_file({"a.bin"}), (root_ / "program" / "weights" / "a.bin").string());
  touch(root_ / "cwd" / "weights" / "a.bin");
  EXPECT_EQ(find_weights_file({"a.bin"}), "weights/a.bin");
}

TEST_F(WeightsDir, EachFolderForEveryNameBeforeTheNext) {
  touch(root_ / "program" / "weights" / "first.bin");
  touch(root_ / "cwd" / "weights" / "second.bin");
  EXPECT_EQ(find_weights_file({"first.bin", "second.bin"}), "weights/second.bin");
  touch(root_ / "cwd" / "weights" / "first.bin");
  EXPECT_EQ(find_weights_file({"first.bin", "second.bin"}), "weights/first.bin");
}

TEST_F(WeightsDir, NoFallbackFolderSearchesTheWorkingDirectoryAlone) {
  touch(root_ / "program" / "weights" / "a.bin");
  set_weights_fallback_dir("");
  EXPECT_EQ(find_weights_file({"a.bin"}), "");
}

}  // namespace
}  // namespace sdgen
