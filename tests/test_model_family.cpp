// Files of other Stable Diffusion families are named as such (io/model_family.h): SDXL variants and SD 2 unCLIP
// and depth single files by their tensors' names, InstructPix2Pix models by the UNet's input
// channels, extra conditioning inputs (unCLIP, x4 upscaler, SDXL) and x0-predicting schedulers by
// their config; one line, the model exit code. SD 2.x itself runs (tests/test_sd2.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "sdgen/error.h"
#include "test_helpers.h"

using namespace sdgen;
namespace fs = std::filesystem;

namespace {
const std::string kData = SDGEN_TEST_DATA;

using test_helpers::error_of;
fs::path temp(const std::string& tag) {
  fs::path d = fs::temp_directory_path() / ("sdgen_family_" + tag + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
// A single file with these tensors (values irrelevant: refused before any is read).
std::string ldm_file(const fs::path& dir, const std::vector<std::pair<std::string, Shape>>& tensors) {
  std::vector<StWriteTensor> ts;
  for (const auto& [n, s] : tensors) {
    int64_t count = 1;
    for (int64_t d : s) count *= d;
    ts.push_back(st_tensor_from_floats(n, StDType::F32, s, std::vector<float>((size_t)count, 0.0f)));
  }
  const std::string p = (dir / "model.safetensors").string();
  write_safetensors(p, ts);
  return p;
}
const std::pair<std::string, Shape> kConvIn4{"model.diffusion_model.input_blocks.0.0.weight", {8, 4, 3, 3}};
}  // namespace

TEST(ModelFamily, SingleFilesOfOtherFamiliesAreNamed) {
  const fs::path d = temp("ldm");
  std::string msg = error_of([&] {
    Checkpoint::open(ldm_file(d, {kConvIn4, {"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", {4}}}));
  });
  // SDXL base has both encoders (tests/test_sdxl.cpp); one alone is another model.
  EXPECT_NE(msg.find("is an SDXL-like checkpoint whose text encoders (conditioner.embedders.*) are not SDXL base's"),
            std::string::npos)
      << msg;
  msg = error_of([&] {
    Checkpoint::open(ldm_file(d, {kConvIn4, {"conditioner.embedders.0.model.ln_final.weight", {4}}}));
  });
  EXPECT_NE(msg.find("is an SDXL refiner checkpoint (conditioner.embedders.0.model.*"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(ldm_file(d, {kConvIn4, {"model.diffusion_model.label_emb.0.0.weight", {4, 4}}})); });
  EXPECT_NE(msg.find("is an SDXL-style UNet (model.diffusion_model.label_emb.*: size conditioning) without SDXL's two "
                     "text encoders"),
            std::string::npos)
      << msg;
  // label_emb beside OpenCLIP's text encoder is SD 2 unCLIP's image embedding, not SDXL.
  msg = error_of([&] {
    Checkpoint::open(ldm_file(d, {kConvIn4, {"cond_stage_model.model.ln_final.weight", {4}},
                                  {"model.diffusion_model.label_emb.0.0.weight", {4, 4}}}));
  });
  EXPECT_NE(msg.find("is an SD 2 unCLIP or x4-upscaler checkpoint (model.diffusion_model.label_emb.*"), std::string::npos)
      << msg;
  msg = error_of([&] { Checkpoint::open(ldm_file(d, {kConvIn4, {"embedder.model.ln_final.weight", {4}}})); });
  EXPECT_NE(msg.find("is an SD 2 unCLIP checkpoint (embedder.*"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(ldm_file(d, {kConvIn4, {"depth_model.model.pretrained.layer1.0.weight", {4}}})); });
  EXPECT_NE(msg.find("is an SD 2 depth model (depth_model.*"), std::string::npos) << msg;
  // An OpenCLIP file is SD 2.x, which loads: this one fails for its missing tensors, not its family.
  msg = error_of([&] { Checkpoint::open(ldm_file(d, {kConvIn4, {"cond_stage_model.model.ln_final.weight", {4}}})); });
  EXPECT_EQ(msg.find("sd-gen runs Stable Diffusion"), std::string::npos) << msg;
  // A 9-channel UNet is an inpainting model, which runs (tests/test_inpaint9.cpp): this file fails
  // for its missing tensors, not its family.
  msg = error_of([&] { Checkpoint::open(ldm_file(d, {{"model.diffusion_model.input_blocks.0.0.weight", {8, 9, 3, 3}}})); });
  EXPECT_EQ(msg.find("sd-gen runs Stable Diffusion v1.x"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(ldm_file(d, {{"model.diffusion_model.input_blocks.0.0.weight", {8, 8, 3, 3}}})); });
  EXPECT_NE(msg.find("sd-gen runs Stable Diffusion v1.x, 2.x and SDXL base"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(ldm_file(d, {{"model.diffusion_model.input_blocks.0.0.weight", {8, 8, 3, 3}}})); });
  EXPECT_NE(msg.find("InstructPix2Pix"), std::string::npos) << msg;
  fs::remove_all(d);
}

// The tiny diffusers folder with one config changed.
TEST(ModelFamily, FoldersOfOtherFamiliesAreNamed) {
  const fs::path d = temp("folder");
  auto variant = [&](const std::string& file, const char* key, const nlohmann::json& value) {
    const fs::path root = d / "model";
    fs::remove_all(root);
    fs::copy(kData + "/tiny_sd/diffusers", root, fs::copy_options::recursive);
    nlohmann::json j = nlohmann::json::parse(std::ifstream(root / file));
    j[key] = value;
    std::ofstream(root / file) << j.dump();
    return root.string();
  };
  // v_prediction runs (test_v_prediction.cpp); an x0-predicting ("sample") scheduler is named.
  std::string msg = error_of([&] { Checkpoint::open(variant("scheduler/scheduler_config.json", "prediction_type", "sample")); });
  EXPECT_NE(msg.find("predicts \"sample\", not epsilon or v"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(variant("unet/config.json", "in_channels", 8)); });
  EXPECT_NE(msg.find("is an InstructPix2Pix-style model"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(variant("unet/config.json", "cross_attention_dim", 2048)); });
  EXPECT_NE(msg.find("is an SDXL model"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(variant("unet/config.json", "class_embed_type", "projection")); });
  EXPECT_NE(msg.find("class_embed_type \"projection\": the UNet takes an extra conditioning input (an image "
                     "embedding, as SD 2 unCLIP)"),
            std::string::npos)
      << msg;
  // SDXL's added conditioning needs its sizes (and then a second text encoder: tests/test_sdxl.cpp);
  // other kinds are named.
  msg = error_of([&] { Checkpoint::open(variant("unet/config.json", "addition_embed_type", "text_time")); });
  EXPECT_NE(msg.find("field 'addition_time_embed_dim' must be positive and even"), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(variant("unet/config.json", "addition_embed_type", "image")); });
  EXPECT_NE(msg.find("field 'addition_embed_type' \"image\" is not \"text_time\""), std::string::npos) << msg;
  msg = error_of([&] { Checkpoint::open(variant("unet/config.json", "num_class_embeds", 1000)); });
  EXPECT_NE(msg.find("num_class_embeds 1000: the UNet takes an extra conditioning input (a class label"),
            std::string::npos)
      << msg;
  // prediction_type epsilon, as diffusers writes it, and v_prediction: load.
  EXPECT_NO_THROW(Checkpoint::open(variant("scheduler/scheduler_config.json", "prediction_type", "epsilon")));
  EXPECT_EQ(Checkpoint::open(variant("scheduler/scheduler_config.json", "prediction_type", "v_prediction"))
                ->config().scheduler.prediction_type,
            "v_prediction");
  fs::remove_all(d);
}

// --ema through the binary: the tiny file has one EMA tensor, not a copy of every UNet tensor, so
// the run stops before any image with the model exit code, naming the first missing copy.
TEST(ModelFamily, EmaFlagReachesTheLoader) {
  const fs::path d = temp("ema_cli");
  const std::string err = (d / "err.txt").string();
  const std::string cmd = std::string("'") + SDGEN_CLI_PATH + "' --device cpu --quiet --ema --prompt x -W 64 -H 64 --steps 1 --out '" +
                          (d / "out").string() + "' --model '" + kData + "/tiny_sd/tiny_sd.safetensors' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
  std::ifstream f(err);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("--ema: the EMA copy of 'model.diffusion_model."), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(d / "out") && !fs::is_empty(d / "out"));
  fs::remove_all(d);
}
