// How fast the SIMT emulator runs a realistic kernel: one GroupNorm+SiLU launch of the emulated CUDA
// backend over 2×64×64×320 (64 blocks of 256 threads, 2.6 M elements), fp32 and fp16, with the
// emulator's own counters (blocks, threads, fiber switches). CI's emulated suites depend on this
// speed; it is a benchmark, not a test (no timed assertions).
//   build/benchmarks/bench_emu_groupnorm [repeats]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "sdgen/backend.h"
#include "simt_runtime.h"

using namespace sdgen;

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  std::unique_ptr<Backend> be = make_cuda_backend();  // installs the emulated device memory hooks
  const Shape shape{2, 64, 64, 320};
  std::vector<float> v((size_t)2 * 64 * 64 * 320);
  std::mt19937 gen(1);
  std::normal_distribution<float> dist;
  for (float& x : v) x = dist(gen);
  for (DType dt : {DType::F32, DType::F16}) {
    Tensor x = Tensor::from_floats(shape, v), g = Tensor::from_floats({320}, std::vector<float>(320, 1.f)),
           b = Tensor::from_floats({320}, std::vector<float>(320, 0.f));
    if (dt == DType::F16) x = be->cast(x.to(Device::CUDA), dt), g = be->cast(g.to(Device::CUDA), dt),
                          b = be->cast(b.to(Device::CUDA), dt);
    else x = x.to(Device::CUDA), g = g.to(Device::CUDA), b = b.to(Device::CUDA);
    double best = 1e30;
    simt::Stats before = simt::stats(), after = before;
    for (int r = 0; r < repeats; ++r) {
      before = simt::stats();
      auto t0 = std::chrono::steady_clock::now();
      Tensor y = be->group_norm(x, g, b, 32, 1e-5f, true);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      after = simt::stats();
    }
    std::printf("emulated group_norm+silu 2x64x64x320 %s: best of %d %.3f s; %llu blocks, %llu threads, "
                "%llu fiber switches per launch\n",
                dtype_name(dt), repeats, best, (unsigned long long)(after.blocks - before.blocks),
                (unsigned long long)(after.threads - before.threads),
                (unsigned long long)(after.switches - before.switches));
  }
  return 0;
}
