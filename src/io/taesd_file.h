// --vae-tiny FILE: a tiny autoencoder (TAESD, diffusers AutoencoderTiny) in either form people
// download it:
//   - a diffusers AutoencoderTiny folder (config.json + diffusion_pytorch_model[.fp16].safetensors,
//     or a pipeline folder holding one as vae/), or that folder's safetensors file alone: tensors
//     "decoder.layers.K.*" and "encoder.layers.K.*";
//   - the original single files taesd_decoder.safetensors / taesd_encoder.safetensors, whose names
//     are the bare nn.Sequential indices ("1.weight", "3.conv.0.weight", ...). The decoder's index 0
//     there is its Clamp module, which diffusers does not count: file index K+1 is diffusers' K. Given
//     one of the pair, the other is taken from beside it (the name with decoder <-> encoder swapped).
// Served under canonical names "taesd.decoder.layers.K.*" / "taesd.encoder.layers.K.*" (diffusers'
// indices). The architecture (levels, channels, blocks per level) is read from the tensors' shapes.
#pragma once
#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "sdgen/config.h"

namespace sdgen {

struct TaesdFile {
  std::unique_ptr<Checkpoint> weights;
  TaesdConfig config;
  bool has_decoder = false;
  bool has_encoder = false;
  std::string name;  // the file or folder name, for "VAE: <name>" in the PNG metadata
};

// Error(kModel), one line naming the path, for: no such file, unreadable, not a TAESD (no layer
// tensors of either form, or a layer sequence or shapes that are not AutoencoderTiny's), a config.json
// with an activation or upsampling other than relu / nearest.
TaesdFile open_taesd_file(const std::string& path);

}  // namespace sdgen
