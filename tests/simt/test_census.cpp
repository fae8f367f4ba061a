// The census of the CUDA path (benchmarks/cuda_census, tests/simt/simt_census.h) on full-size SD
// v1.5 at batch 3 × 25 steps, 512×512: the sampling loop makes no allocation, no free, no
// synchronizing call and no host↔device copy; with CUDA graphs it is one graph launch per step and
// no other launch, without them the kernel launches per step are what the host issues. fp16 and
// fp32. Each run is the census binary itself, as CI and the README run it (a dry emulator run).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

#include "io/checkpoint.h"
#include "pipeline/memory_estimate.h"

namespace {

struct Census {
  nlohmann::json j;
  const nlohmann::json& phase(const char* name) const { return j.at("phases").at(name); }
};

// extra: more options (" --vae-tiny").
Census run_census(const std::string& precision, bool graphs, const std::string& extra = "") {
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("sdgen_census_" + std::to_string(getpid()) + "_" + precision + (graphs ? "_g" : "") + ".json"))
                              .string();
  const std::string cmd = std::string("'") + SDGEN_CENSUS_PATH +
                          "' --model random:sd15 --batch 3 --steps 25 --width 512 --height 512 --precision " +
                          precision + " --cuda-graphs " + (graphs ? "on" : "off") + extra + " --json > '" + out + "'";
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
  // The first step runs eagerly before any capture; with graphs the step is then recorded once
  // (step_recording) and replayed for the other 24 steps; without graphs nothing is captured. No
  // library set-up call (handles, heuristics, plan finalize) is ever made while capturing.
  EXPECT_EQ(c.phase("unet_warmup").at("captures"), 0);
  EXPECT_GT(c.phase("unet_warmup").at("launches").get<int>(), 0) << "the first step did not run eagerly";
  EXPECT_EQ(loop.at("captures"), 0);
  EXPECT_EQ(c.phase("run").at("captures"), graphs ? 1 : 0);
  EXPECT_EQ(c.phase("step_recording").at("captures"), graphs ? 1 : 0);
  EXPECT_EQ(c.phase("step_recording").at("allocs"), 0) << "the recording did not find the warm-up's buffers";
  EXPECT_TRUE(c.phase("run").at("setup_in_capture").empty()) << c.phase("run").at("setup_in_capture").dump();
  if (graphs) {
    EXPECT_EQ(loop.at("graph_launches"), 24);
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
  for (const char* phase : {"text_encoder", "unet_warmup", "unet_step", "sampling_loop", "vae_decode", "run"}) {
    const nlohmann::json& f = c.phase(phase).at("flops");
    const double analytic = f.at("analytic").get<double>();
    EXPECT_NEAR(f.at("total").get<double>(), analytic, 0.02 * analytic) << phase;
  }
  std::printf("[ census ] %s graphs %s: estimate H100 %.3f s, peak device memory %.0f MiB\n",
              c.j.at("precision").get<std::string>().c_str(), graphs ? "on" : "off",
              c.j.at("estimate_s").at("H100 SXM").get<double>(),
              c.phase("run").at("peak_device_bytes").get<double>() / 1048576.0);
}

// The up-front memory estimate of sd-gen (src/pipeline/memory_estimate.h) against the peak the
// pool held in the census of the real host code: never below it (sd-gen must not start what will
// not fit), at most 1.35× above (the tiny model: 96 MiB), for full-size SD v1.5 and the tiny model, both precisions, batch
// and size, with the step's graph freed before the decode (one generation) or kept (a next call), and
// with a ControlNet, full-size SD v1.5 and SDXL.
TEST(Census, MemoryEstimateBoundsThePoolPeak) {
  struct Case {
    const char* model;
    const char* precision;
    int batch, size;
    bool keep;
    bool taesd = false;  // --vae-tiny: SD's TAESD decodes
    int controlnets = 0;   // the model's ControlNets, random weights (--controlnets)
  };
  const std::string tiny = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";
  for (const Case& c : {Case{"random:sd15", "fp16", 1, 512, false}, Case{"random:sd15", "fp16", 3, 512, false},
                        Case{"random:sd15", "fp16", 3, 512, true}, Case{"random:sd15", "fp32", 2, 768, false},
                        Case{"random:sd15", "fp16", 1, 1024, false}, Case{"tiny", "fp16", 2, 512, false},
                        Case{"tiny", "fp32", 4, 256, true}, Case{"random:sd15", "fp16", 1, 1024, false, true},
                        Case{"random:sd15", "fp32", 3, 512, false, true}, Case{"random:sd15", "fp16", 3, 512, false, false, 1},
                        Case{"random:sdxl", "fp16", 1, 1024, false, false, 1}}) {
    const std::string model = std::string(c.model) == "tiny" ? tiny : c.model;
    const std::string out = (std::filesystem::temp_directory_path() /
                             ("sdgen_census_mem_" + std::to_string(getpid()) + ".json")).string();
    const std::string cmd = std::string("'") + SDGEN_CENSUS_PATH + "' --model '" + model + "' --batch " +
                            std::to_string(c.batch) + " --steps 1 --width " + std::to_string(c.size) +
                            " --height " + std::to_string(c.size) + " --precision " + c.precision +
                            (c.keep ? " --keep-step-graph" : "") + (c.taesd ? " --vae-tiny" : "") + " --controlnets " + std::to_string(c.controlnets) + " --json > '" + out + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream f(out);
    const nlohmann::json j = nlohmann::json::parse(f);
    std::filesystem::remove(out);
    const double peak = j.at("phases").at("run").at("peak_device_bytes").get<double>();
    sdgen::MemoryRequest r;
    r.device = sdgen::Device::CUDA;
    r.precision = std::string(c.precision) == "fp16" ? sdgen::DType::F16 : sdgen::DType::F32;
    r.batch = c.batch;
    r.width = r.height = c.size;
    r.steps = 1;
    r.keep_step_graph = c.keep;
    r.vae_tiny = c.taesd;
    r.controlnets = c.controlnets;
    const sdgen::MemoryEstimate e = sdgen::estimate_memory(sdgen::Checkpoint::open(model)->config(), r);
    const double ratio = (double)e.total() / peak;
    std::printf("[ census ] %s %s batch %d %d² %s, %d ControlNet(s): pool peak %.0f MiB, estimate %s (%.2fx)\n",
                c.model, c.precision, c.batch, c.size, c.keep ? "graph kept" : "graph freed", c.controlnets,
                peak / 1048576.0,
                sdgen::describe(e).c_str(), ratio);
    EXPECT_GE(ratio, 1.0) << c.model << " " << c.precision << " batch " << c.batch << " " << c.size;
    // Above by at most 35%, or by the fixed 64 MiB allowance for library workspaces and small
    // buffers where the whole run is smaller than that (the tiny model).
    EXPECT_LE((double)e.total() - peak, std::max(0.35 * peak, 96.0 * 1048576))
        << c.model << " " << c.precision << " batch " << c.batch << " " << c.size;
  }
}

TEST(Census, Fp16LoopWithGraphs) { expect_quiet_loop(run_census("fp16", true), true); }
TEST(Census, Fp16LoopWithoutGraphs) { expect_quiet_loop(run_census("fp16", false), false); }
TEST(Census, Fp32LoopWithGraphs) { expect_quiet_loop(run_census("fp32", true), true); }
TEST(Census, Fp32LoopWithoutGraphs) { expect_quiet_loop(run_census("fp32", false), false); }

// TAESD decoding (--vae-tiny): the loop as quiet, and its decode's convolutions by hand, per image
// 2·9·Cin·Cout per output pixel: conv_in 4→64 at 64², per level its blocks' three 64→64 convs each,
// the conv after each ×2 upsampling, conv_out 64→3 at 512² (141.35 GFLOP; the full decoder's ~2.5 T).
TEST(Census, TaesdDecode) {
  const Census c = run_census("fp16", true, " --vae-tiny");
  expect_quiet_loop(c, true);
  const double px = 64.0 * 64, conv = 2.0 * 9 * 64 * 64;  // 64² latents; a 64→64 3×3 conv per pixel
  double per_image = 2.0 * 9 * 4 * 64 * px;                 // conv_in
  per_image += 3 * 3 * conv * px + conv * 4 * px;          // level 0: 3 blocks at 64², the conv at 128²
  per_image += 3 * 3 * conv * 4 * px + conv * 16 * px;     // level 1: 3 blocks at 128², conv at 256²
  per_image += 3 * 3 * conv * 16 * px + conv * 64 * px;    // level 2: 3 blocks at 256², conv at 512²
  per_image += 1 * 3 * conv * 64 * px + 2.0 * 9 * 64 * 3 * 64 * px;  // level 3: 1 block, conv_out
  EXPECT_NEAR(c.phase("vae_decode").at("flops").at("total").get<double>(), 3 * per_image, 0.01 * 3 * per_image);
}

// Live previews every 5 units (the estimate kernel in the recorded step): each preview is one
// asynchronous copy into pinned memory, queued behind its unit, and one wait on that copy's event,
// made once the next unit is queued; no other synchronization, allocation or copy in the loop.
TEST(Census, PreviewsWaitOnlyForTheirCopies) {
  const Census c = run_census("fp16", true, " --preview-every 5");
  const nlohmann::json& loop = c.phase("sampling_loop");
  EXPECT_EQ(loop.at("allocs"), 0) << loop.dump();
  EXPECT_EQ(loop.at("frees"), 0);
  EXPECT_EQ(loop.at("h2d"), 0);
  EXPECT_EQ(loop.at("d2d"), 0);
  EXPECT_EQ(loop.at("d2h"), 4);  // after units 5, 10, 15 and 20 of 25
  EXPECT_EQ(loop.at("syncs"), 4);
  EXPECT_EQ(loop.at("sync_calls"), nlohmann::json({{"cudaEventSynchronize", 4}})) << loop.at("sync_calls").dump();
  EXPECT_EQ(loop.at("graph_launches"), 24);
  EXPECT_EQ(loop.at("launches"), 0);
}

}  // namespace
