// canny_edges (io/canny.h): the checks and the 3-channel output here; cv::Canny itself in the plugin
// libsdgen_canny.so (io/canny_cv.cpp), opened on first use.
#include "io/canny.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "sdgen/error.h"

namespace sdgen {

namespace {

using CannyFn = int (*)(const uint8_t*, int, int, int, int, uint8_t*);

// $SDGEN_CANNY_PLUGIN, else libsdgen_canny.so beside the running program, else where this build
// made it (the test programs run from folders below it).
CannyFn canny_function() {
  static CannyFn fn = nullptr;
  if (fn) return fn;
  std::vector<std::string> paths;
  if (const char* p = std::getenv("SDGEN_CANNY_PLUGIN"); p && *p) paths.push_back(p);
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  const std::string exe = n > 0 ? std::string(buf, (size_t)n) : std::string();
  paths.push_back(exe.substr(0, exe.find_last_of('/') + 1) + "libsdgen_canny.so");
#ifdef SDGEN_CANNY_BUILD_PATH
  paths.push_back(SDGEN_CANNY_BUILD_PATH);
#endif
  std::string why;
  for (const std::string& path : paths) {
    dlerror();
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      if (why.empty()) why = e ? e : path;
      continue;
    }
    fn = reinterpret_cast<CannyFn>(dlsym(lib, "sdgen_canny_edges"));
    if (fn) return fn;
    why = path + " has no entry point sdgen_canny_edges";
  }
  throw_runtime("--control-preprocess canny needs the OpenCV plugin libsdgen_canny.so beside sd-gen: " + why);
}

}  // namespace

RgbImage canny_edges(const RgbImage& picture, int low, int high) {
  if (low < 0 || high < 0)
    throw_usage("canny thresholds must not be negative (low " + std::to_string(low) + ", high " +
                std::to_string(high) + ")");
  SDGEN_CHECK(picture.width > 0 && picture.height > 0 &&
                  picture.pixels.size() == (size_t)picture.width * picture.height * 3,
              "canny_edges: a picture of width·height·3 bytes");
  std::vector<uint8_t> edges((size_t)picture.width * picture.height);
  if (canny_function()(picture.pixels.data(), picture.width, picture.height, low, high, edges.data()) != 0)
    throw_runtime("OpenCV's Canny failed on a " + std::to_string(picture.width) + "x" + std::to_string(picture.height) +
                  " picture");
  RgbImage out;
  out.width = picture.width;
  out.height = picture.height;
  out.pixels.resize(picture.pixels.size());
  for (size_t i = 0; i < edges.size(); ++i) out.pixels[i * 3] = out.pixels[i * 3 + 1] = out.pixels[i * 3 + 2] = edges[i];
  return out;
}

}  // namespace sdgen
