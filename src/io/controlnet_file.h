// --control FILE: a ControlNet for SD v1.x in the forms people download:
//   - a diffusers ControlNetModel folder (config.json + diffusion_pytorch_model[.fp16].safetensors or
//     .bin), or that folder's weights file alone (diffusers names: "conv_in.weight",
//     "controlnet_cond_embedding.*", "controlnet_down_blocks.N.*", ...);
//   - a file in the original naming (lllyasviel's ControlNet, A1111's extension): "control_model.*"
//     with the UNet's LDM names (time_embed, input_blocks, middle_block), the hint encoder
//     input_hint_block.{0,2,...} (its SiLUs in between hold the odd indices), zero_convs.N.0 and
//     middle_block_out.0; .safetensors, or .pth/.ckpt through the restricted unpickler.
// Served under canonical names "controlnet.<diffusers name>". A ControlNet copies its UNet's encoder,
// so the architecture is the model's UNet (a folder's config.json is checked against it) and the
// hint encoder's channels are read from the tensors' shapes.
#pragma once
#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "sdgen/config.h"

namespace sdgen {

struct ControlNetFile {
  std::unique_ptr<Checkpoint> weights;
  ControlNetConfig config;
  std::string name;  // the file or folder name, for the PNG metadata
};

// base: the model's config. Error(kModel), one line naming the path, for: no such file, unreadable,
// no ControlNet tensors, a config.json for another UNet than the model's, a ControlNet kind the
// pipeline does not run (global_pool_conditions: the shuffle model). Mis-shaped tensors fail when
// the ControlNet loads them, naming the tensor.
// A path starting with kRandomControlNet ("random:controlnet", "random:controlnet-2", ...) is SD's
// ControlNet for the model with random weights, seeded by the path (benchmarks, the census).
ControlNetFile open_controlnet_file(const std::string& path, const ModelConfig& base);
inline constexpr const char* kRandomControlNet = "random:controlnet";

}  // namespace sdgen
