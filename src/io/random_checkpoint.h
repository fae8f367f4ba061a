// A checkpoint with random weights of whatever shape the models ask for: the full-size SD v1.5
// architecture without a 4 GB download, for benchmarks (compute cost does not depend on the values).
// Values: seeded normal·0.02 per tensor name, norm weights around 1, so activations stay finite.
#pragma once
#include "io/checkpoint.h"

namespace sdgen {

std::unique_ptr<Checkpoint> make_random_checkpoint(const ModelConfig& config, uint64_t seed = 0);

}  // namespace sdgen
