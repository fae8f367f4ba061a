// LoRA (--lora FILE[:SCALE], A1111's <lora:NAME:SCALE> prompt tags): low-rank weight deltas merged
// into the UNet's and text encoder's weights as they load, W += scale · (alpha / rank) · up · down
// (what diffusers' fuse_lora computes), for linears and for 1×1 and k×k convs (down [r, in, k, k],
// up [out, r, 1, 1]). Two file forms, both .safetensors:
//   - kohya (sd-scripts, A1111, CivitAI): lora_unet_<module>.lora_down.weight / .lora_up.weight /
//     .alpha, lora_te_<module>... with the diffusers module path's dots as underscores;
//   - diffusers/PEFT (pipe.save_lora_weights): unet.<module>.lora_A.weight / .lora_B.weight,
//     text_encoder.<module>... (with or without text_model.), alpha and rank from the file's
//     "lora_adapter_metadata" (<component>.lora_alpha, <component>.r), else alpha = rank.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/lora_spec.h"

namespace sdgen {

// The checkpoint with the LoRAs' deltas added to the tensors it serves (the base must outlive it).
// Every file is read and checked here: Error(kModel) naming the file for a missing, unreadable or
// pickle file, a key whose factors do not fit the model's weight (an SDXL or SD 2.x LoRA), or a
// file none of whose keys is for this model. Keys that match nothing are reported through `warn`
// in one line with their count.
std::unique_ptr<Checkpoint> apply_loras(const Checkpoint& base, const std::vector<LoraSpec>& loras,
                                        const std::function<void(const std::string&)>& warn);

}  // namespace sdgen
