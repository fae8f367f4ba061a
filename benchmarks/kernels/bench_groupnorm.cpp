// Kernel benchmark: GroupNorm (+ fused SiLU) (kernels/groupnorm.cu, kernels::group_norm: the
// stats, finalize and apply launches together) on SD v1.5 shapes: the UNet's resnet norms at
// batch 6 (3 images × guidance) on the 64×64×320 and 32×32×640 levels and the 32×32×960 skip
// concatenation (transformer norm, no SiLU), 32 groups, and
// the VAE decoder's last 512×512×128 norm (batch 1).
// Versions (the launcher picks them; this program steers it):
//   vec16   16-byte loads and stores (4 floats or 8 halves per access): C a multiple of 16 bytes
//           and x, y 16-byte aligned.
//   scalar  one element per access: the same tensors with every pointer one element past
//           16-byte alignment (what the launcher does for odd channel counts or offset views).
// Both in fp32 and fp16. Each run is checked against the plain CPU backend (Backend::group_norm)
// with the op table's norm tolerances (tests/op_cases.h), max error and PASS/FAIL printed; the
// program exits 1 on any FAIL. Bandwidth counts the bytes the op must move: x read once and y
// written once (2 × elements × element size); the v2 kernels read x twice, so 67% of peak by this
// count is the most they can reach.
// On a GPU: build/benchmarks/bench_groupnorm_gpu [--repeats N] (SD shapes). Emulated (CI, ctest
// -R KernelBench): build/benchmarks/bench_groupnorm (small shapes, validation only).
#include <cstdio>
#include <string>
#include <vector>

#include "kbench.h"
#include "kernels.h"

using namespace sdgen;

namespace {

struct Case {
  const char* name;
  Shape x;  // [batch, h, w, c]
  int groups;
  float eps;
  bool silu;
};

struct Version {
  const char* name;
  DType dt;
  int offset;  // elements past alignment
};

bool run(const Case& c, const Version& ver, const kbench::Options& opt, const kbench::Peak& peak) {
  const int64_t batch = c.x[0], spatial = c.x[1] * c.x[2], ch = c.x[3];
  const std::vector<float> x = kbench::random_values(c.x, 0, ver.dt), gamma = kbench::random_values({ch}, 1, ver.dt, 0.1f, 1.0f),
                           beta = kbench::random_values({ch}, 2, ver.dt, 0.1f);
  kbench::DeviceArray dx = kbench::upload(x, ver.dt, ver.offset), dg = kbench::upload(gamma, ver.dt, ver.offset),
                      db = kbench::upload(beta, ver.dt, ver.offset),
                      dy = kbench::device_array(batch * spatial * ch, ver.dt, ver.offset),
                      work = kbench::device_array(kernels::group_norm_workspace_floats(batch, spatial, ch, c.groups, ver.dt),
                                                  DType::F32);
  auto launch = [&] {
    kernels::group_norm(dx.ptr, dg.ptr, db.ptr, dy.ptr, static_cast<float*>(work.ptr), batch, spatial, ch, c.groups,
                        c.eps, c.silu, ver.dt, nullptr);
  };
  launch();
  const std::vector<float> out = kbench::download(dy);
  const double ms = kbench::time_ms(opt, launch);
  const std::vector<float> expect = kbench::reference()
                                        .group_norm(Tensor::from_floats(c.x, x), Tensor::from_floats({ch}, gamma),
                                                    Tensor::from_floats({ch}, beta), c.groups, c.eps, c.silu)
                                        .to_floats();
  const double bytes = 2.0 * (double)batch * spatial * ch * dtype_size(ver.dt);
  const bool pass = kbench::report(c.name, ver.name, ver.dt, out, expect, optest::tol::kNorm, ms, bytes,
                                   kbench::Rate::kBandwidth, peak);
  for (kbench::DeviceArray* a : {&dx, &dg, &db, &dy, &work}) kbench::release(*a);
  return pass;
}

}  // namespace

int main(int argc, char** argv) {
  const kbench::Options opt = kbench::parse(argc, argv, "GroupNorm (kernels::group_norm): vec16, scalar");
  const std::vector<Case> full = {
      {"gn_silu_6x64x64x320_g32", {6, 64, 64, 320}, 32, 1e-5f, true},
      {"gn_silu_6x32x32x640_g32", {6, 32, 32, 640}, 32, 1e-5f, true},
      {"gn_6x32x32x960_g32", {6, 32, 32, 960}, 32, 1e-6f, false},
      {"gn_silu_vae_1x512x512x128_g32", {1, 512, 512, 128}, 32, 1e-6f, true},
  };
  // The same kinds on fewer rows (the emulator is ~10^4 times slower than a GPU).
  const std::vector<Case> small = {
      {"gn_silu_2x8x8x320_g32", {2, 8, 8, 320}, 32, 1e-5f, true},
      {"gn_silu_1x8x8x640_g32", {1, 8, 8, 640}, 32, 1e-5f, true},
      {"gn_1x4x4x960_g32", {1, 4, 4, 960}, 32, 1e-6f, false},
      {"gn_silu_vae_1x64x64x128_g32", {1, 64, 64, 128}, 32, 1e-6f, true},
  };
  const Version versions[] = {{"vec16", DType::F32, 0}, {"scalar", DType::F32, 1},
                              {"vec16", DType::F16, 0}, {"scalar", DType::F16, 1}};
  bool ok = true;
  try {
    const kbench::Peak peak = kbench::device_peak();
    kbench::print_device(peak);
    for (const Case& c : opt.small ? small : full)
      for (const Version& v : versions) ok = run(c, v, opt, peak) && ok;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_groupnorm: %s\n", e.what());
    return 1;
  }
  std::printf("bench_groupnorm: %s\n", ok ? "all PASS" : "FAIL");
  return ok ? 0 : 1;
}
