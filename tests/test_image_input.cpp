// Input pictures against Pillow and diffusers (goldens of tests/reference/make_image_goldens.py):
// PIL's Lanczos resize (sizes up and down, odd ratios, the empty boxes of the fill mode), the three
// resize modes as diffusers' VaeImageProcessor.resize (= A1111's), A1111's alpha flattening, grey and
// 16-bit PNGs, and the EXIF orientations as ImageOps.exif_transpose; then the bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/image_read.h"
#include "io/image_resize.h"
#include "io/safetensors.h"
#include "sdgen/error.h"

using namespace sdgen;
namespace fs = std::filesystem;

namespace {

const std::string kData = SDGEN_TEST_DATA;
const std::string kImages = kData + "/images/";

struct Goldens {
  std::unique_ptr<SafetensorsFile> f = SafetensorsFile::open(kData + "/golden/images.safetensors");
  RgbImage get(const std::string& key) const {
    const StTensorInfo* t = f->find(key);
    if (!t) throw std::runtime_error("golden " + key + " missing");
    RgbImage img;
    img.height = (int)t->shape[0];
    img.width = (int)t->shape[1];
    const std::vector<float> v = f->to_floats(*t);
    for (float x : v) img.pixels.push_back((uint8_t)x);
    return img;
  }
};

// The number of channels that differ by more than tol (sizes must agree).
size_t differing(const RgbImage& a, const RgbImage& b, int tol = 0) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.pixels.size() != b.pixels.size()) return SIZE_MAX;
  size_t n = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) n += std::abs((int)a.pixels[i] - (int)b.pixels[i]) > tol;
  return n;
}

}  // namespace

TEST(ImageInput, LanczosResizeEqualsPillow) {
  const Goldens g;
  const RgbImage src = read_image(kImages + "src_37x23.png", "--init-image");
  ASSERT_EQ(src.width, 37);
  ASSERT_EQ(src.height, 23);
  for (auto [w, h] : std::vector<std::pair<int, int>>{{64, 48}, {16, 16}, {100, 23}, {37, 9}, {5, 61}, {1, 1}, {37, 23}, {74, 46}, {12, 8}}) {
    const std::string key = "resize." + std::to_string(w) + "x" + std::to_string(h);
    SCOPED_TRACE(key);
    EXPECT_EQ(differing(resize_lanczos(src, w, h), g.get(key)), 0u);
  }
  struct Boxed {
    const char* name;
    int w, h;
    ResizeBox box;
  };
  for (const Boxed& b : {Boxed{"box_top", 37, 5, {0, 0, 37, 0}}, Boxed{"box_bottom", 37, 5, {0, 23, 37, 23}},
                         Boxed{"box_left", 4, 23, {0, 0, 0, 23}}, Boxed{"box_right", 4, 23, {37, 0, 37, 23}},
                         Boxed{"box_mid", 20, 30, {3.5, 2.25, 30.0, 20.5}}}) {
    SCOPED_TRACE(b.name);
    EXPECT_EQ(differing(resize_lanczos(src, b.w, b.h, b.box), g.get(std::string("resize.") + b.name)), 0u);
  }
}

TEST(ImageInput, ResizeModesEqualDiffusersAndA1111) {
  const Goldens g;
  const RgbImage src = read_image(kImages + "src_37x23.png", "--init-image");
  for (auto [mode, ref] : std::vector<std::pair<ResizeMode, std::string>>{
           {ResizeMode::Just, "default"}, {ResizeMode::Crop, "crop"}, {ResizeMode::Fill, "fill"}})
    for (auto [w, h] : std::vector<std::pair<int, int>>{{64, 64}, {64, 24}, {24, 64}, {74, 46}}) {
      const std::string key = "fit." + ref + "." + std::to_string(w) + "x" + std::to_string(h);
      SCOPED_TRACE(key);
      EXPECT_EQ(differing(fit_image(src, w, h, mode), g.get(key)), 0u);
    }
  ResizeMode m;
  EXPECT_TRUE(parse_resize_mode("crop", &m));
  EXPECT_EQ(m, ResizeMode::Crop);
  EXPECT_FALSE(parse_resize_mode("Crop", &m));
}

TEST(ImageInput, AlphaGreyAnd16BitAsTheReferenceTools) {
  const Goldens g;
  EXPECT_EQ(differing(read_image(kImages + "alpha_rgba.png", "--init-image"), g.get("alpha.rgba")), 0u);
  EXPECT_EQ(differing(read_image(kImages + "alpha_la.png", "--init-image"), g.get("alpha.la")), 0u);
  EXPECT_EQ(differing(read_image(kImages + "grey.png", "--init-image"), g.get("grey")), 0u);
  EXPECT_EQ(differing(read_image(kImages + "rgb16.png", "--init-image"), g.get("rgb16")), 0u);
}

TEST(ImageInput, ExifOrientationAsExifTranspose) {
  const Goldens g;
  for (int o = 1; o <= 8; ++o) {
    SCOPED_TRACE(o);
    const RgbImage img = read_image(kImages + "exif" + std::to_string(o) + ".png", "--init-image");
    EXPECT_EQ(differing(img, g.get("exif." + std::to_string(o))), 0u);
  }
  // JPEG: stb's decoder and libjpeg round differently near the quadrants' edges; inside them both
  // give the colour to a few levels, and a wrong orientation moves whole quadrants (~200 levels).
  for (int o : {3, 6, 8}) {
    SCOPED_TRACE(o);
    const RgbImage img = read_image(kImages + "exif" + std::to_string(o) + ".jpg", "--init-image");
    EXPECT_LE(differing(img, g.get("exif_jpeg." + std::to_string(o)), 40), img.pixels.size() / 20);
  }
}

TEST(ImageInput, BadFilesAreOneClearLine) {
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage);
      return e.what();
    }
    return "no error";
  };
  const fs::path dir = fs::temp_directory_path() / ("sdgen_image_input_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  EXPECT_NE(message([&] { read_image((dir / "missing.png").string(), "--init-image"); }).find("--init-image"), std::string::npos);
  EXPECT_NE(message([&] { read_image((dir / "missing.png").string(), "--init-image"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(message([&] { read_image(write("empty.png", ""), "--init-image"); }).find("empty"), std::string::npos);
  EXPECT_NE(message([&] { read_image(write("text.png", "this is not a picture"), "--init-image"); }).find("not an image"),
            std::string::npos);
  EXPECT_NE(message([&] { read_image(dir.string(), "--init-image"); }).find("not a regular file"), std::string::npos);
  // A PNG cut after its header: the size is known, the pixels are not.
  std::ifstream in(kImages + "src_37x23.png", std::ios::binary);
  std::string png((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(message([&] { read_image(write("cut.png", png.substr(0, 60)), "--init-image"); }).find("corrupt"),
            std::string::npos);
  // A header claiming 20000 × 20000: refused before decoding.
  std::string huge = png;
  const uint32_t side = 20000;
  for (int i = 0; i < 4; ++i) huge[16 + i] = huge[20 + i] = (char)(side >> (24 - 8 * i));
  const std::string m = message([&] { read_image(write("huge.png", huge), "--init-image"); });
  EXPECT_NE(m.find("20000x20000"), std::string::npos) << m;
  // 9000 × 9000: under the side limit, over the 2^26 pixels in all.
  std::string wide = png;
  for (int i = 0; i < 4; ++i) wide[16 + i] = wide[20 + i] = (char)(9000u >> (24 - 8 * i));
  const std::string m2 = message([&] { read_image(write("wide.png", wide), "--init-image"); });
  EXPECT_NE(m2.find("9000x9000"), std::string::npos) << m2;
  // An IDAT that claims 2 GB in a small file: refused before stb_image grows a buffer for it.
  std::string claims = png;
  const size_t idat = claims.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  for (int i = 0; i < 4; ++i) claims[idat - 4 + i] = (char)(0x7FFFFFF0u >> (24 - 8 * i));
  const std::string m3 = message([&] { read_image(write("claims.png", claims), "--init-image"); });
  EXPECT_NE(m3.find("a chunk runs past the end of the file"), std::string::npos) << m3;
  // The same claim (2^30 + 1 bytes) in a chunk whose 8-byte header is the file's end.
  std::string header_only = png.substr(0, idat + 4);
  for (int i = 0; i < 4; ++i) header_only[idat - 4 + i] = (char)(0x40000001u >> (24 - 8 * i));
  const std::string m5 = message([&] { read_image(write("header_only.png", header_only), "--init-image"); });
  EXPECT_NE(m5.find("a chunk runs past the end of the file"), std::string::npos) << m5;
  // A JPEG cut inside its scan: libjpeg's own words, one line.
  std::ifstream jin(kImages + "exif3.jpg", std::ios::binary);
  const std::string jpg((std::istreambuf_iterator<char>(jin)), {});
  const std::string m4 = message([&] { read_image(write("cut.jpg", jpg.substr(0, 40)), "--init-image"); });
  EXPECT_NE(m4.find("the JPEG cannot be read"), std::string::npos) << m4;
  fs::remove_all(dir);
}
