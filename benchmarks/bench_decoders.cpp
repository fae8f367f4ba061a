// The full VAE decoder against TAESD's (--vae-tiny) on the CPU backend: one 512×512 image from a
// 64×64×4 latent, SD v1.5's VAE and SD's TAESD with random weights of the real shapes, in the same
// run. Prints one JSON line with each decoder's best time, their ratio, and each pass's peak live
// activations from the dry pass (pipeline/dry_run.h) that the memory check uses.
//   build/benchmarks/bench_decoders [--repeats N] [--dtype f32|f16|bf16] [--size S]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "io/random_checkpoint.h"
#include "pipeline/dry_run.h"
#include "sdgen/backend.h"
#include "vae/taesd.h"
#include "vae/vae.h"

using namespace sdgen;

namespace {

template <class Decode>
double best_of(int repeats, const Decode& decode) {
  decode();  // warm-up: first touch of the activations, the thread team's start
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    decode();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 3, size = 512;
  DType dtype = DType::F32;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--size") && i + 1 < argc) size = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--dtype") && i + 1 < argc) {
      const std::string d = argv[++i];
      dtype = d == "bf16" ? DType::BF16 : d == "f16" || d == "fp16" ? DType::F16 : DType::F32;
    }
  }
  const ModelConfig cfg;  // SD v1.5's VAE
  const TaesdConfig tcfg;  // SD's TAESD
  auto ckpt = make_random_checkpoint(cfg);
  const VaeDecoder full(*ckpt, cfg.vae, dtype, Device::CPU);
  const TaesdDecoder tiny(*ckpt, tcfg, dtype, Device::CPU);
  std::mt19937 rng(0);
  std::normal_distribution<float> n01;
  const int h = size / 8;
  std::vector<float> z((size_t)h * h * 4);
  for (float& v : z) v = n01(rng);
  const Tensor latents = Tensor::from_floats({1, h, h, 4}, z);
  const double full_s = best_of(repeats, [&] { (void)full.decode(latents); });
  const double tiny_s = best_of(repeats, [&] { (void)tiny.decode(latents); });
  const uint64_t full_live = vae_decoder_pass(cfg.vae, 1, size, size, dtype).live_bytes;
  const uint64_t tiny_live = taesd_decoder_pass(tcfg, 1, size, size, dtype).live_bytes;
  std::printf("{\"size\": %d, \"dtype\": \"%s\", \"full_s\": %.4f, \"taesd_s\": %.4f, \"speedup\": %.1f, "
              "\"full_live_bytes\": %llu, \"taesd_live_bytes\": %llu}\n",
              size, dtype_name(dtype), full_s, tiny_s, full_s / tiny_s, (unsigned long long)full_live,
              (unsigned long long)tiny_live);
  return 0;
}
