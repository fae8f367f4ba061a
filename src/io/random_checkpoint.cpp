#include "io/random_checkpoint.h"

#include <functional>
#include <random>

namespace sdgen {

namespace {

class RandomCheckpoint : public Checkpoint {
 public:
  RandomCheckpoint(const ModelConfig& cfg, uint64_t seed) : cfg_(cfg), seed_(seed) {}
  const ModelConfig& config() const override { return cfg_; }
  std::string name() const override { return "random"; }
  // SD v1 transformers have exactly one block: the models probe for more with has().
  bool has(const std::string& n) const override {
    const std::string key = "transformer_blocks.";
    size_t p = n.find(key);
    return p == std::string::npos || n.compare(p + key.size(), 2, "0.") == 0;
  }
  Tensor get(const std::string& n, const Shape& expected) const override {
    Tensor t = Tensor::empty(expected);
    std::mt19937 rng((uint32_t)(std::hash<std::string>{}(n) ^ seed_));
    std::normal_distribution<float> dist(0.0f, 0.02f);
    const bool is_norm_weight = n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 &&
                                expected.size() == 1 && n.find("norm") != std::string::npos;
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng) + (is_norm_weight ? 1.0f : 0.0f);
    return t;
  }
  std::vector<std::string> names() const override { return {}; }

 private:
  ModelConfig cfg_;
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<Checkpoint> make_random_checkpoint(const ModelConfig& config, uint64_t seed) {
  return std::make_unique<RandomCheckpoint>(config, seed);
}

}  // namespace sdgen
