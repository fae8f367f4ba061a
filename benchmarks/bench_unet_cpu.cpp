// One evaluation of the full-size SD v1.5 UNet on the CPU backend (random weights of the real
// shapes), batch 2, 64×64×4 latent, 77×768 context — the computation unet_cpu_torch.py times in
// PyTorch. Prints one JSON line; benchmarks/unet_cpu.sh runs both and prints the ratio.
//   build/benchmarks/bench_unet_cpu [--repeats N] [--batch B] [--dtype f32|bf16|f16] [--plain]
// --dtype: the UNet's precision (sd-gen --precision), weights and activations stored in it.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include <cblas.h>

#include "io/random_checkpoint.h"
#include "sdgen/backend.h"
#include "unet/unet.h"

using namespace sdgen;

int main(int argc, char** argv) {
  int repeats = 3, batch = 2;
  DType dtype = DType::F32;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--dtype") && i + 1 < argc) {
      const std::string d = argv[++i];
      dtype = d == "bf16" ? DType::BF16 : d == "f16" || d == "fp16" ? DType::F16 : DType::F32;
    } else if (!std::strcmp(argv[i], "--plain")) set_cpu_plain(true);
  }
  ModelConfig cfg;  // SD v1.5
  auto ckpt = make_random_checkpoint(cfg);
  UNet unet(*ckpt, cfg.unet, dtype, Device::CPU);
  std::mt19937 rng(0);
  std::normal_distribution<float> n01;
  std::vector<float> xv((size_t)batch * 64 * 64 * 4), cv((size_t)batch * 77 * 768);
  for (auto& v : xv) v = n01(rng);
  for (auto& v : cv) v = n01(rng);
  Tensor x = Tensor::from_floats({batch, 64, 64, 4}, xv);
  Tensor ctx = Tensor::from_floats({batch, 77, 768}, cv);
  std::vector<float> t(batch, 961.0f);
  unet.forward(x, t, ctx);  // warm-up: first-touch of activation memory, BLAS thread start
  double best = 1e30;
  std::string runs;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor eps = unet.forward(x, t, ctx);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    runs += (r ? ", " : "") + std::to_string(s);
  }
  // The OpenBLAS kernel set matters (AVX2 vs AVX-512 GEMM: ~2x); OPENBLAS_CORETYPE forces one.
  std::printf("{\"impl\": \"sd-gen\", \"batch\": %d, \"dtype\": \"%s\", \"openblas_core\": \"%s\", \"seconds\": %.4f, \"runs\": [%s]}\n",
              batch, dtype_name(dtype), openblas_get_corename(), best, runs.c_str());
  return 0;
}
