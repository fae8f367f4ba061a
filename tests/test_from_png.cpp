// --from-png (cli/infotext.h, io/png_text.h) and --grid (io/image_grid.h): A1111's PNGs (made by
// tests/reference/make_a1111_pngs.py with Pillow, text as A1111 1.10 writes it) give the settings
// their fields mean; our own PNGs give back the same files byte for byte; grids hold each image
// byte for byte in A1111's layout.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/infotext.h"
#include "cli/options.h"
#include "cli/settings.h"
#include "cli_fixture.h"
#include "io/image_grid.h"
#include "io/png_text.h"
#include "io/png_writer.h"
#include "sdgen/error.h"
#include "stb_image_static.h"

namespace fs = std::filesystem;
using namespace sdgen;
using namespace sdgen::cli;
using test_helpers::slurp;

namespace {

const std::string kA1111 = std::string(SDGEN_TEST_DATA) + "/a1111/";

Job from_png(const std::string& file) {
  Job j;
  apply_png_parameters(j, kA1111 + file);
  return j;
}

TEST(FromPng, A1111Txt2imgSettings) {
  const Job j = from_png("txt2img.png");
  EXPECT_EQ(j.prompt, "a lighthouse at dusk, (oil painting:1.2)\nwide shot");
  EXPECT_EQ(j.negative_prompt, "blurry, \"low\" quality, text");
  EXPECT_EQ(j.steps, 20);
  EXPECT_EQ(j.sampler.kind, SamplerKind::Dpmpp2m);
  EXPECT_EQ(j.sampler.schedule, Schedule::Karras);  // "Schedule type: Karras"
  EXPECT_EQ(j.guidance, 6.5f);
  ASSERT_TRUE(j.seed.has_value());
  EXPECT_EQ(*j.seed, 3456789012u);
  EXPECT_EQ(j.width, 512);
  EXPECT_EQ(j.height, 768);
  EXPECT_EQ(j.strength, 0.55);
  EXPECT_EQ(j.clip_skip, 2);
  EXPECT_EQ(j.rng, RngKind::TorchCpu);          // "RNG: CPU"
  EXPECT_EQ(j.seed_mode, SeedMode::PerImage);   // absent: A1111 seeds image i with seed+i
  EXPECT_FALSE(j.emphasis);                     // "Emphasis: None"
  EXPECT_TRUE(j.vae.empty());                   // informational: a file name only
  EXPECT_TRUE(j.loras.empty());
  EXPECT_EQ(j.batch, 1);
}

TEST(FromPng, A1111ItxtAndDefaults) {
  const Job j = from_png("itxt.png");
  EXPECT_EQ(j.prompt, "富士山の風景, ukiyo-e");
  EXPECT_EQ(j.negative_prompt, "");
  EXPECT_EQ(j.steps, 30);
  EXPECT_EQ(j.sampler.kind, SamplerKind::EulerA);
  EXPECT_EQ(j.sampler.schedule, Schedule::Default);
  EXPECT_EQ(j.guidance, 7.0f);
  EXPECT_EQ(*j.seed, 42u);
  EXPECT_EQ(j.width, 640);
  EXPECT_EQ(j.height, 448);
  EXPECT_EQ(j.rng, RngKind::Philox);  // absent: A1111's GPU generator
  EXPECT_EQ(j.batch, 4);
  EXPECT_EQ(j.clip_skip, 1);
  EXPECT_TRUE(j.emphasis);
}

TEST(FromPng, A1111ZtxtLatin1) {
  const Job j = from_png("ztxt.png");
  EXPECT_EQ(j.prompt, "a caf\xc3\xa9 in Paris");  // Latin-1 é read as UTF-8
  EXPECT_EQ(j.negative_prompt, "people");
  EXPECT_EQ(j.sampler.kind, SamplerKind::Ddim);
  EXPECT_FLOAT_EQ(j.sampler.eta, 0.3f);
  EXPECT_EQ(j.steps, 12);
}

TEST(FromPng, UnsupportedFieldNamesFieldAndFile) {
  Job j;
  const std::string path = kA1111 + "unsupported.png";
  try {
    apply_png_parameters(j, path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_EQ(std::string(e.what()),
              "--from-png " + path + ": \"Face restoration: CodeFormer\" is not a setting sd-gen reproduces");
  }
  Infotext t = parse_infotext("cat\nSteps: 20, Sampler: DPM++ SDE Karras, Seed: 1");
  try {
    apply_infotext(j, t, "x.png");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.png: \"Sampler: DPM++ SDE Karras\": not a sampler"), std::string::npos)
        << e.what();
  }
}

TEST(FromPng, InfotextQuotedValuesAndShortLastLine) {
  Infotext t = parse_infotext(
      "a, b\nNegative prompt: c\nd\nSteps: 5, Lora hashes: \"x: 12, y: 34\", Seed: 9, Size: 64x128");
  EXPECT_EQ(t.prompt, "a, b");
  EXPECT_EQ(t.negative_prompt, "c\nd");
  ASSERT_EQ(t.fields.size(), 4u);
  EXPECT_EQ(t.fields[1].first, "Lora hashes");
  EXPECT_EQ(t.fields[1].second, "x: 12, y: 34");
  EXPECT_EQ(t.fields[3].second, "64x128");
  // Fewer than three pairs: the last line is the prompt's (A1111's rule).
  t = parse_infotext("a cat\nstyle: ink, mood: calm");
  EXPECT_EQ(t.prompt, "a cat\nstyle: ink, mood: calm");
  EXPECT_TRUE(t.fields.empty());
}

// SDXL's second prompts: in the parameters only when given, as a JSON string (their commas and
// quotes), read back into the same fields; not in the identity of a job without them.
TEST(FromPng, SecondPromptsRoundTrip) {
  Job j;
  j.prompt = "a castle";
  EXPECT_EQ(parameters_text(j, 1, 0, "m").find("Prompt 2"), std::string::npos);
  EXPECT_FALSE(settings_identity(j, RecordContext{}).contains("prompt_2"));
  j.prompt_2 = "oil painting, \"dark\" sky";
  j.negative_prompt_2 = "low contrast: grainy";
  const std::string text = parameters_text(j, 1, 0, "m");
  EXPECT_NE(text.find("Prompt 2: \"oil painting, \\\"dark\\\" sky\", Negative prompt 2: \"low contrast: grainy\""),
            std::string::npos)
      << text;
  EXPECT_EQ(settings_identity(j, RecordContext{})["prompt_2"], j.prompt_2);
  Job back;
  apply_infotext(back, parse_infotext(text), "x.png");
  EXPECT_EQ(back.prompt_2, j.prompt_2);
  EXPECT_EQ(back.negative_prompt_2, j.negative_prompt_2);
}

TEST(FromPng, BadFilesAreUsageErrors) {
  const std::vector<uint8_t> png = encode_png(std::vector<uint8_t>(12, 0).data(), 2, 2, "a\nSteps: 1, Seed: 2, Size: 64x64");
  EXPECT_EQ(png_text_from_bytes(png, "parameters", "p.png", "--from-png"), "a\nSteps: 1, Seed: 2, Size: 64x64");
  auto err = [](const std::vector<uint8_t>& b) {
    try {
      png_text_from_bytes(b, "parameters", "p.png", "--from-png");
    } catch (const Error& e) {
      return std::to_string((int)e.code()) + " " + e.what();
    }
    return std::string("none");
  };
  EXPECT_EQ(err({'G', 'I', 'F', '8'}), "2 --from-png p.png: not a PNG file");
  std::vector<uint8_t> cut(png.begin(), png.begin() + 50);
  EXPECT_NE(err(cut).find("2 --from-png p.png: cut short"), std::string::npos) << err(cut);
  std::vector<uint8_t> flipped = png;
  flipped[33 + 8 + 3] ^= 1;  // a byte of the tEXt chunk's keyword
  EXPECT_NE(err(flipped).find("corrupt (CRC of the tEXt chunk)"), std::string::npos) << err(flipped);
  const std::vector<uint8_t> bare = encode_png(std::vector<uint8_t>(12, 0).data(), 2, 2, "");
  EXPECT_EQ(err(bare), "2 --from-png p.png: no \"parameters\" text in this PNG");
}

// rows = round(sqrt(n)), cols = ceil(n / rows), worked by hand.
TEST(Grid, A1111Shape) {
  const int want[][2] = {{1, 1}, {1, 2}, {2, 2}, {2, 2}, {2, 3}, {2, 3}, {3, 3}, {3, 3}, {3, 3}, {3, 4}};
  for (int n = 1; n <= 10; ++n) {
    const GridShape g = grid_shape(n);
    EXPECT_EQ(g.rows, want[n - 1][0]) << n;
    EXPECT_EQ(g.cols, want[n - 1][1]) << n;
  }
}

using cli_test::CliTest;
class FromPngCli : public CliTest {
 protected:
  // Generates with `args` into a/ (names img-{i}), reproduces image `index` with --from-png into b/
  // (plus `extra`), and expects every file of b/ to equal a/'s byte for byte.
  void round_trip(const std::string& args, int index = 0, const std::string& extra = "") {
    cli_test::Result r = run(args + " --name 'img-{i}' --out a");
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_raw("--device cpu -m '" + cli_test::kModel + "' --from-png a/img-" + std::to_string(index) +
                ".png --name 'img-{i}' --out b " + extra);
    ASSERT_EQ(r.code, 0) << args << "\n" << r.err;
    const auto a = files(dir_ / "a"), b = files(dir_ / "b");
    ASSERT_FALSE(b.empty());
    for (const auto& [name, bytes] : b) {
      ASSERT_TRUE(a.count(name)) << name;
      EXPECT_TRUE(a.at(name) == bytes) << args << ": " << name << " differs";
    }
    fs::remove_all(dir_ / "a");
    fs::remove_all(dir_ / "b");
  }
};

TEST_F(FromPngCli, OwnPngsGiveBackTheSameFiles) {
  round_trip("-p 'a red fox' --sampler dpmpp_2m --schedule karras --clip-skip 2 --seed 5000000000 -g 6.5 "
             "-n 'blurry, \"low\" quality: (bad:1.2)' -W 128 -H 64 --steps 3");
  round_trip("-p 'a cat, ink' --precision fp16 --sampler euler_a --rng philox --seed 9 -W 64 -H 128");
  round_trip("-p '(a dog:1.3)' --no-emphasis --sampler ddim --eta 0.5 --seed 3");
  // Batch mode: image 1 comes back with its whole batch; per-image: the PNG's seed is the image's own.
  round_trip("-p owl --batch 2 --seed 4 --sampler euler", 1);
  round_trip("-p owl --batch 2 --seed 4 --seed-mode per-image", 0);
  // img2img: the picture is not in the PNG (nor in A1111's); its strength is.
  const std::string pic = std::string(SDGEN_TEST_DATA) + "/images/init_128x64.png";
  round_trip("-p castle --init-image '" + pic + "' --strength 0.6 --steps 4 --seed 8", 0,
             "--init-image '" + pic + "'");
  // A prompt with a newline (from a prompt-file line).
  write("p.jsonl", nlohmann::json({{"prompt", "a cat\nin a hat"}, {"seed", 12}}).dump() + "\n");
  round_trip("--prompt-file p.jsonl");
}

TEST_F(FromPngCli, CommandLineWinsWherever) {
  cli_test::Result r = run("-p owl --seed 4 --steps 3 --name img --out a");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_raw("--device cpu -m '" + cli_test::kModel + "' --steps 2 --from-png a/img.png --seed 5 -p hen --name img --out b");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string png = slurp(dir_ / "b/img.png");
  EXPECT_NE(png.find("hen\nSteps: 2, "), std::string::npos);
  EXPECT_NE(png.find("Seed: 5, "), std::string::npos);
  EXPECT_NE(png.find("Size: 64x64"), std::string::npos);  // the PNG's
}

TEST_F(FromPngCli, UnsupportedFieldIsOneLineExit2) {
  const cli_test::Result r = run("--from-png '" + kA1111 + "unsupported.png' --out o");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("unsupported.png: \"Face restoration: CodeFormer\" is not a setting"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "o"));
}

// The sheet of n images: A1111's rows and columns, each cell the image's pixels byte for byte,
// the cells left over black; named in --json and in the manifest.
TEST_F(FromPngCli, GridHoldsEachImage) {
  for (int n : {3, 4, 5}) {
    const std::string out = "g" + std::to_string(n);
    const cli_test::Result r = run("-p fox --seed 2 --batch " + std::to_string(n) + " -W 64 -H 128 --grid --json " +
                                   "--manifest " + out + ".jsonl --name 'img-{i}' --out " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    const GridShape g = grid_shape(n);
    int w = 0, h = 0, c = 0;
    const fs::path grid = dir_ / out / "grid-img-0.png";
    unsigned char* sheet = stbi_load(grid.c_str(), &w, &h, &c, 3);
    ASSERT_NE(sheet, nullptr) << grid;
    EXPECT_EQ(w, g.cols * 64);
    EXPECT_EQ(h, g.rows * 128);
    for (int i = 0; i < g.rows * g.cols; ++i) {
      int iw = 0, ih = 0;
      unsigned char* img = i < n ? stbi_load((dir_ / out / ("img-" + std::to_string(i) + ".png")).c_str(), &iw, &ih, &c, 3)
                                 : nullptr;
      for (int y = 0; y < 128; ++y)
        for (int x = 0; x < 64 * 3; ++x) {
          const int cell = sheet[((size_t)((i / g.cols) * 128 + y) * w + (i % g.cols) * 64) * 3 + x];
          const int want = img ? img[(size_t)y * 64 * 3 + x] : 0;
          ASSERT_EQ(cell, want) << n << " images, cell " << i << " row " << y;
        }
      if (img) stbi_image_free(img);
    }
    stbi_image_free(sheet);
    EXPECT_NE(slurp(grid).find("fox\nSteps: 2"), std::string::npos);  // the first image's parameters
    const std::string& json = r.out;
    EXPECT_NE(json.find("\"grid\":\"" + out + "/grid-img-0.png\""), std::string::npos) << json;
    const std::string manifest = slurp(dir_ / (out + ".jsonl"));
    EXPECT_NE(manifest.find("\"grid\":\"" + out + "/grid-img-0.png\""), std::string::npos) << manifest;
  }
  // One image: no sheet (A1111's default); a planned run: refused.
  cli_test::Result r = run("-p fox --seed 2 --grid --name 'img-{i}' --out one");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "one/grid-img-0.png"));
  r = run("-p fox --seed 2 --batch 2 --grid --shard 0/1 --out s");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--grid cannot be combined with --shard"), std::string::npos) << r.err;
}

}  // namespace
