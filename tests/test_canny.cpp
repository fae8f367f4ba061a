// ControlNet's canny preprocessor against cv2.Canny (goldens of tests/reference/make_canny_goldens.py,
// the opencv-python wheel on the RGB array, cv2's defaults): our canny_edges, which calls Debian's
// OpenCV, must give the same edge map pixel for pixel, in each of R, G and B. The two OpenCVs are
// different builds (and versions), so this is a test of the call: channels in the reference's order,
// aperture, gradient norm, threshold order, and what the output looks like.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "io/canny.h"
#include "io/safetensors.h"
#include "sdgen/error.h"

using namespace sdgen;

namespace {

const std::string kData = SDGEN_TEST_DATA;

// Pixels of `channel` of `ours` that differ from the one-channel golden map.
size_t differing(const RgbImage& ours, const std::vector<uint8_t>& golden, int channel) {
  size_t n = 0;
  for (int y = 0; y < ours.height; ++y)
    for (int x = 0; x < ours.width; ++x) n += ours.at(x, y, channel) != golden[(size_t)y * ours.width + x];
  return n;
}

}  // namespace

TEST(Canny, EqualsCv2CannyOnEveryGolden) {
  const auto f = SafetensorsFile::open(kData + "/golden/canny.safetensors");
  const auto pictures = nlohmann::json::parse(f->metadata().at("pictures"));
  const auto thresholds = nlohmann::json::parse(f->metadata().at("thresholds"));
  ASSERT_GE(pictures.size(), 5u);
  ASSERT_GE(thresholds.size(), 7u);
  size_t edge_pixels = 0;
  for (const std::string name : pictures) {
    const RgbImage picture = read_image(kData + "/images/" + name, "test");
    for (const auto& t : thresholds) {
      const int low = t[0], high = t[1];
      SCOPED_TRACE(name + " low " + std::to_string(low) + " high " + std::to_string(high));
      const StTensorInfo* info = f->find("canny." + name + "." + std::to_string(low) + "_" + std::to_string(high));
      ASSERT_NE(info, nullptr);
      ASSERT_EQ(info->dtype, StDType::U8);
      ASSERT_EQ(info->shape, (Shape{picture.height, picture.width}));
      std::vector<uint8_t> golden((size_t)info->numel());
      f->copy_bytes(*info, golden.data());
      const RgbImage edges = canny_edges(picture, low, high);
      ASSERT_EQ(edges.width, picture.width);
      ASSERT_EQ(edges.height, picture.height);
      ASSERT_EQ(edges.pixels.size(), picture.pixels.size());
      for (int c = 0; c < 3; ++c) EXPECT_EQ(differing(edges, golden, c), 0u) << "channel " << c;
      for (uint8_t v : golden) edge_pixels += v == 255;
    }
  }
  // The goldens are not blank: thousands of edge pixels decide the comparison.
  EXPECT_GT(edge_pixels, 10000u);
}

TEST(Canny, NegativeThresholdsAreOneClearLine) {
  RgbImage picture;
  picture.width = 4, picture.height = 3;
  picture.pixels.assign(4 * 3 * 3, 128);
  for (const auto& [low, high] : std::vector<std::pair<int, int>>{{-1, 200}, {100, -5}, {-3, -2}}) {
    try {
      canny_edges(picture, low, high);
      ADD_FAILURE() << "no error for " << low << ", " << high;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage);
      const std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      EXPECT_NE(m.find("low " + std::to_string(low)), std::string::npos) << m;
      EXPECT_NE(m.find("high " + std::to_string(high)), std::string::npos) << m;
    }
  }
  // Zero is a threshold (every local maximum of a nonzero gradient), not an error; a flat picture
  // has no edges.
  const RgbImage flat = canny_edges(picture, 0, 0);
  for (uint8_t v : flat.pixels) EXPECT_EQ(v, 0);
}
