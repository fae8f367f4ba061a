// The census of the CUDA path (benchmarks/cuda_census, tests/simt/simt_census.h) on full-size SD
// v1.5 at batch 3 × 25 steps, 512×512: the sampling loop makes no allocation, no free, no
// synchronizing call and no host↔device copy; with CUDA graphs it is one graph launch per step and
// no other launch, without them the kernel launches per step are what the host issues. fp16 and
// fp32. Each run is the census binary itself, as CI and the README run it (a dry emulator run:
// ~15 s each).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

namespace {

struct Census {
  nlohmann::json j;
  const nlohmann::json& phase(const char* name) const { return j.at("phases").at(name); }
};

Census run_census(const std::string& precision, bool graphs) {
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("sdgen_census_" + std::to_string(getpid()) + "_" + precision + (graphs ? "_g" : "") + ".json"))
                              .string();
  const std::string cmd = std::string("'") + SDGEN_CENSUS_PATH +
                          "' --model random:sd15 --batch 3 --steps 25 --width 512 --height 512 --precision " +
                          precision + " --cuda-graphs " + (graphs ? "on" : "off") + " --json > '" + out + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out);
  Census c;
  c.j = nlohmann::json::parse(f);
  std::filesystem::remove(out);
  return c;
}

void expect_quiet_loop(const Census& c, bool graphs) {
  const nlohmann::json& loop = c.phase("sampling_loop");
  EXPECT_EQ(loop.at("allocs"), 0) << loop.dump();
  EXPECT_EQ(loop.at("frees"), 0);
  EXPECT_EQ(loop.at("syncs"), 0) << loop.at("sync_calls").dump();
  EXPECT_EQ(loop.at("h2d"), 0);
  EXPECT_EQ(loop.at("d2h"), 0);
  EXPECT_EQ(loop.at("d2d"), 0);
  const nlohmann::json& step = c.phase("unet_step");
  if (graphs) {
    EXPECT_EQ(loop.at("graph_launches"), 25);
    EXPECT_EQ(loop.at("launches"), 0) << "a kernel launched outside the graph";
    EXPECT_GT(step.at("graph_kernels").get<int>(), 0);
  } else {
    EXPECT_EQ(loop.at("graph_launches"), 0);
    EXPECT_GT(step.at("launches").get<int>(), 0);
    std::printf("[ census ] %s without graphs: %d kernel launches and %zu library call kinds per UNet step\n",
                c.j.at("precision").get<std::string>().c_str(), step.at("launches").get<int>(),
                step.at("library_calls").size());
  }
  // The FLOP count of the work is the same either way: the UNet at batch 6 (3 images with guidance)
  // is 6 × ~0.80 TFLOP per step (README, "Performance notes").
  const double step_flops = step.at("flops").at("total").get<double>();
  EXPECT_NEAR(step_flops / 6, 0.80e12, 0.05e12);
  // The FLOPs counted from the recorded calls agree with the analytic count of the same work
  // (src/pipeline/flops.h, what sd-gen bench's MFU divides by), phase by phase.
  for (const char* phase : {"text_encoder", "unet_step", "vae_decode", "run"}) {
    const nlohmann::json& f = c.phase(phase).at("flops");
    const double analytic = f.at("analytic").get<double>();
    EXPECT_NEAR(f.at("total").get<double>(), analytic, 0.02 * analytic) << phase;
  }
  std::printf("[ census ] %s graphs %s: estimate H100 %.3f s, peak device memory %.0f MiB\n",
              c.j.at("precision").get<std::string>().c_str(), graphs ? "on" : "off",
              c.j.at("estimate_s").at("H100 SXM").get<double>(),
              c.phase("run").at("peak_device_bytes").get<double>() / 1048576.0);
}

TEST(Census, Fp16LoopWithGraphs) { expect_quiet_loop(run_census("fp16", true), true); }
TEST(Census, Fp16LoopWithoutGraphs) { expect_quiet_loop(run_census("fp16", false), false); }
TEST(Census, Fp32LoopWithGraphs) { expect_quiet_loop(run_census("fp32", true), true); }
TEST(Census, Fp32LoopWithoutGraphs) { expect_quiet_loop(run_census("fp32", false), false); }

}  // namespace
