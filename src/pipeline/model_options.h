// What replaces or extends a checkpoint's own weights when a Pipeline loads it (--vae, --embedding, --lora).
#pragma once
#include <string>
#include <vector>

#include "io/lora.h"
#include "text/embeddings.h"

namespace sdgen {

struct ModelOptions {
  // A VAE file or folder (io/vae_file.h) whose decoder replaces the checkpoint's; empty: its own.
  std::string vae;
  // Textual-inversion embeddings (text/embeddings.h).
  std::vector<EmbeddingSpec> embeddings;
  // LoRAs merged into the UNet and text encoder weights at load (io/lora.h).
  std::vector<LoraSpec> loras;
  // A single file's UNet from its EMA copies (io/checkpoint.h, OpenOptions).
  bool ema = false;
  // Load the VAE's encoder too (images in: img2img, inpainting), from where the decoder comes (the
  // checkpoint, or --vae). Text-to-image leaves it off and holds no encoder weights.
  bool need_encoder = false;
  // A TAESD file or folder (io/taesd_file.h) whose tiny decoder decodes instead of the full VAE's,
  // which is then not loaded; empty: the full decoder.
  std::string vae_tiny;
  // ControlNet files or folders (io/controlnet_file.h) loaded with the model (GenerateParams::controls
  // names them; one not listed here is loaded by the first generation that names it).
  std::vector<std::string> controlnets;
};

}  // namespace sdgen
