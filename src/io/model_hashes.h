// The short hashes A1111 writes into an image's infotext so that a LoRA or an embedding can be
// found again (civitai and image browsers look them up): the first 12 hex digits of a SHA-256.
//   LoRA ("Lora hashes"): of a .safetensors file's bytes after its header (the "addnet" hash of
//     kohya's sd-scripts, which A1111 uses for LoRAs so that editing the metadata keeps the hash);
//     of the whole file for other formats.
//   Embedding ("TI hashes"): of the whole file.
// Each file is hashed once per process (a LoRA can be hundreds of MB). Error(kModel) naming a file
// that cannot be read.
#pragma once
#include <string>

namespace sdgen {

std::string lora_short_hash(const std::string& path);
std::string embedding_short_hash(const std::string& path);

}  // namespace sdgen
