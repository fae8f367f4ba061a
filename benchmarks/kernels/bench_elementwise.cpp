// Kernel benchmark: the memory-bound kernels of the transformer blocks on SD v1.5 shapes:
// GEGLU (kernels/elementwise.cu, kernels::geglu: x [rows, 2c] -> value · gelu(gate), the UNet's
// 2 × 4096 × 2560 feed-forward projection), the elementwise add (kernels::add, 2 × 64×64×320) and
// LayerNorm (kernels/layernorm.cu, kernels::layer_norm: the UNet transformer's 2 × 4096 × 320
// rows and CLIP's 2 × 77 × 768).
// Versions: "aligned" (16-byte-aligned pointers, whatever vector width the launcher takes) and
// "offset" (every pointer one element past 16-byte alignment: the launcher's scalar fallback where
// it has one), each in fp32 and fp16. Each run is checked against the plain CPU backend with the
// op table's tolerances (pointwise for GEGLU, exact for add, norm for LayerNorm); the program
// exits 1 on any FAIL. Bandwidth counts the bytes the op must move (each input read once, the
// output written once).
// On a GPU: build/benchmarks/bench_elementwise_gpu [--repeats N] (SD shapes). Emulated (CI, ctest
// -R KernelBench): build/benchmarks/bench_elementwise (small shapes, validation only).
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kbench.h"
#include "kernels.h"

using namespace sdgen;

namespace {

enum class Kind { kGeglu, kAdd, kLayerNorm };

struct Case {
  const char* name;
  Kind kind;
  Shape x;  // the input's shape ([rows, 2c] for GEGLU)
};

struct Version {
  const char* name;
  DType dt;
  int offset;
};

bool run(const Case& c, const Version& ver, const kbench::Options& opt, const kbench::Peak& peak) {
  int64_t n = 1;
  for (int64_t d : c.x) n *= d;
  const int64_t last = c.x.back(), rows = n / last;
  Backend& ref = kbench::reference();
  std::vector<kbench::DeviceArray> arrays;
  std::function<void()> launch;
  std::vector<float> expect;
  optest::Tolerances tol = optest::tol::kPointwise;
  double bytes = 0;
  const double es = (double)dtype_size(ver.dt);
  if (c.kind == Kind::kGeglu) {
    const std::vector<float> x = kbench::random_values(c.x, 0, ver.dt, 2.0f);
    arrays = {kbench::upload(x, ver.dt, ver.offset), kbench::device_array(n / 2, ver.dt, ver.offset)};
    launch = [&, rows, last] { kernels::geglu(arrays[0].ptr, arrays[1].ptr, rows, last / 2, ver.dt, nullptr); };
    expect = ref.geglu(Tensor::from_floats(c.x, x)).to_floats();
    bytes = 1.5 * n * es;
  } else if (c.kind == Kind::kAdd) {
    const std::vector<float> a = kbench::random_values(c.x, 0, ver.dt), b = kbench::random_values(c.x, 1, ver.dt);
    arrays = {kbench::upload(a, ver.dt, ver.offset), kbench::upload(b, ver.dt, ver.offset),
              kbench::device_array(n, ver.dt, ver.offset)};
    launch = [&, n] { kernels::add(arrays[0].ptr, arrays[1].ptr, arrays[2].ptr, n, ver.dt, nullptr); };
    expect = ref.add(Tensor::from_floats(c.x, a), Tensor::from_floats(c.x, b)).to_floats();
    tol = optest::tol::kExact;
    bytes = 3.0 * n * es;
  } else {
    const std::vector<float> x = kbench::random_values(c.x, 0, ver.dt),
                             g = kbench::random_values({last}, 1, ver.dt, 0.1f, 1.0f),
                             b = kbench::random_values({last}, 2, ver.dt, 0.1f);
    arrays = {kbench::upload(x, ver.dt, ver.offset), kbench::upload(g, ver.dt, ver.offset),
              kbench::upload(b, ver.dt, ver.offset), kbench::device_array(n, ver.dt, ver.offset)};
    launch = [&, rows, last] {
      kernels::layer_norm(arrays[0].ptr, arrays[1].ptr, arrays[2].ptr, arrays[3].ptr, rows, last, 1e-5f, ver.dt,
                          nullptr);
    };
    expect = ref.layer_norm(Tensor::from_floats(c.x, x), Tensor::from_floats({last}, g), Tensor::from_floats({last}, b),
                            1e-5f)
                 .to_floats();
    tol = optest::tol::kNorm;
    bytes = 2.0 * n * es;
  }
  launch();
  const std::vector<float> out = kbench::download(arrays.back());
  const double ms = kbench::time_ms(opt, launch);
  const bool pass = kbench::report(c.name, ver.name, ver.dt, out, expect, tol, ms, bytes, kbench::Rate::kBandwidth, peak);
  for (kbench::DeviceArray& a : arrays) kbench::release(a);
  return pass;
}

}  // namespace

int main(int argc, char** argv) {
  const kbench::Options opt =
      kbench::parse(argc, argv, "GEGLU, add, LayerNorm (kernels::geglu, add, layer_norm): aligned, offset");
  const std::vector<Case> full = {
      {"geglu_2x4096x2560", Kind::kGeglu, {2, 4096, 2560}},
      {"add_2x64x64x320", Kind::kAdd, {2, 64, 64, 320}},
      {"ln_2x4096x320", Kind::kLayerNorm, {2, 4096, 320}},
      {"ln_clip_2x77x768", Kind::kLayerNorm, {2, 77, 768}},
  };
  const std::vector<Case> small = {
      {"geglu_1x64x2560", Kind::kGeglu, {1, 64, 2560}},
      {"add_1x16x16x320", Kind::kAdd, {1, 16, 16, 320}},
      {"ln_1x64x320", Kind::kLayerNorm, {1, 64, 320}},
      {"ln_clip_1x77x768", Kind::kLayerNorm, {1, 77, 768}},
  };
  const Version versions[] = {{"aligned", DType::F32, 0}, {"offset", DType::F32, 1},
                              {"aligned", DType::F16, 0}, {"offset", DType::F16, 1}};
  bool ok = true;
  try {
    const kbench::Peak peak = kbench::device_peak();
    kbench::print_device(peak);
    for (const Case& c : opt.small ? small : full)
      for (const Version& v : versions) ok = run(c, v, opt, peak) && ok;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_elementwise: %s\n", e.what());
    return 1;
  }
  std::printf("bench_elementwise: %s\n", ok ? "all PASS" : "FAIL");
  return ok ? 0 : 1;
}
