// Every hyperparameter of the three models and the noise schedule, in one place. The defaults are
// Stable Diffusion v1.x; tests build tiny configs of the same architecture and run the same code.
#pragma once
#include <string>
#include <vector>

namespace sdgen {

struct ClipConfig {  // CLIP ViT-L/14 text tower (transformers CLIPTextModel)
  int vocab_size = 49408;
  int max_positions = 77;
  int hidden = 768;
  int layers = 12;
  int heads = 12;
  int intermediate = 3072;
  float eps = 1e-5f;
  std::string act = "quick_gelu";  // or "gelu" (exact)
  // SDXL's encoders: the context is the hidden state before the last layer as it leaves that layer
  // (transformers' hidden_states[-2], no final LayerNorm); SD v1/2 take the final LayerNorm's output.
  bool penultimate = false;
  // CLIPTextModelWithProjection (SDXL's second encoder): the pooled output, the final LayerNorm's
  // row at the end token, projected to this width (text_projection, no bias); 0: none.
  int projection_dim = 0;
  // Where the pooled output is taken, as transformers does: eos_token_id 2 (the legacy value in SD's
  // configs; OpenCLIP's and sgm's own rule) takes the sequence's largest id (the end token, or a
  // textual-inversion token after it in the vocabulary), any other the first eos_token_id.
  int eos_token_id = 2;
  static ClipConfig none() {
    ClipConfig c;
    c.layers = 0;
    return c;
  }
};

struct UNetConfig {  // diffusers UNet2DConditionModel, SD v1, 2.x and SDXL
  int in_channels = 4;
  int out_channels = 4;
  std::vector<int> block_channels{320, 640, 1280, 1280};
  std::vector<bool> down_attention{true, true, true, false};  // up path uses the reverse
  int layers_per_block = 2;                                   // up blocks have one more
  int heads = 8;                    // attention heads in every transformer (head dim = C / heads)
  // Heads per level where the config lists them (SD 2.x: 5, 10, 20, 20, i.e. 64 wide); empty: `heads`
  // everywhere. The mid block takes the last level's, up block i level L-1-i's.
  std::vector<int> level_heads;
  // Transformer blocks per attention, per level (transformer_layers_per_block; SDXL: 1, 2, 10); empty:
  // one everywhere. The mid block takes the last level's, up block i level L-1-i's, as diffusers.
  std::vector<int> level_depth;
  // SDXL's added conditioning (addition_embed_type "text_time"): each of the six size ids
  // sinusoidally embedded addition_time_embed_dim wide, after the pooled text embedding, through
  // add_embedding (linear_1 from projection_class_embeddings_input_dim, SiLU, linear_2), added to
  // the time embedding. 0: none (SD v1/2).
  int addition_time_embed_dim = 0;
  int addition_embed_input_dim = 0;  // projection_class_embeddings_input_dim: pooled + 6·time dim
  // SD 2.1's upcast_attention: scores and softmax in fp32 under fp16 weights. Every attention here
  // already accumulates and normalises in fp32 (kernels/attention.cu), so it is read and changes nothing,
  // as in diffusers 0.42's scaled-dot-product processor.
  bool upcast_attention = false;
  int cross_attention_dim = 768;
  int norm_groups = 32;
  float norm_eps = 1e-5f;           // resnets and conv_norm_out
  float transformer_norm_eps = 1e-6f;  // the transformer's GroupNorm (its LayerNorms use 1e-5)
  int time_embed_dim() const { return block_channels[0] * 4; }
  int heads_at(size_t level) const { return level < level_heads.size() ? level_heads[level] : heads; }
  int depth_at(size_t level) const { return level < level_depth.size() ? level_depth[level] : 1; }
  bool text_time() const { return addition_time_embed_dim > 0; }
};

struct VaeConfig {  // diffusers AutoencoderKL (the encoder is loaded only for images in)
  int latent_channels = 4;
  int in_channels = 3;  // the encoder's image channels
  int out_channels = 3;
  std::vector<int> block_channels{128, 256, 512, 512};  // encoder order; the decoder reverses it
  int layers_per_block = 2;                             // decoder up blocks have one more
  int norm_groups = 32;
  float norm_eps = 1e-6f;
  float scaling_factor = 0.18215f;
  // The config's force_upcast (SDXL's VAE overflows fp16): in fp16 or bf16 runs of an SDXL model the
  // VAE runs in fp32, as diffusers' SDXL pipelines upcast it (its SD v1/2 pipelines ignore the flag).
  bool force_upcast = false;
};

// diffusers AutoencoderTiny (TAESD, madebyollin/taesd): convolutions and ReLUs only. A file's
// architecture is read from its tensors' shapes (io/taesd_file.h); the defaults are TAESD for SD v1.
struct TaesdConfig {
  int latent_channels = 4;
  int in_channels = 3;   // the encoder's image channels
  int out_channels = 3;  // the decoder's
  // Per level, its channels and its AutoencoderTinyBlocks; the decoder upsamples ×2 between levels,
  // the encoder downsamples by a stride-2 convolution at the start of every level but the first.
  std::vector<int> decoder_block_channels{64, 64, 64, 64};
  std::vector<int> decoder_blocks{3, 3, 3, 1};
  std::vector<int> encoder_block_channels{64, 64, 64, 64};
  std::vector<int> encoder_blocks{1, 3, 3, 3};
  // DecoderTiny's soft clamp of its input, tanh(x / m)·m (a constant 3 in diffusers, not read from
  // the config's latent_magnitude, which only scales latents stored as bytes).
  float latent_clamp = 3.0f;
  // The pipeline divides the latents by it before decoding (1 for TAESD: the latents go in as the
  // sampler leaves them, not divided by the full VAE's 0.18215).
  float scaling_factor = 1.0f;
};

// diffusers ControlNetModel (SD v1.x): a copy of the UNet's time embedding, conv_in, down blocks and
// mid block, plus the hint encoder of the control image (controlnet_cond_embedding: a 3x3 conv,
// then per level a 3x3 conv and a stride-2 3x3 conv, SiLU after each, and a 3x3 conv out to
// block_channels[0]) and one 1x1 "zero" conv per residual.
struct ControlNetConfig {
  UNetConfig unet;  // the encoder half's architecture (in_channels 4; out_channels unused)
  int conditioning_channels = 3;
  std::vector<int> conditioning_embedding_channels{16, 32, 96, 256};
};

struct SchedulerConfig {  // diffusers DDIMScheduler as configured for SD v1.5
  int train_timesteps = 1000;
  double beta_start = 0.00085;  // double: diffusers takes √ of the Python float
  double beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";
  int steps_offset = 1;
  bool set_alpha_to_one = false;
  // "linspace", "leading" or "trailing"; empty: the config does not say, and each sampler takes
  // its diffusers class's default (DDIM and PNDM "leading", the others "linspace"), as diffusers'
  // from_config does with SD v1.5's scheduler_config.json, which predates the key.
  std::string timestep_spacing;
  std::string prediction_type;  // as the config says ("" when it does not): epsilon is what runs
  // "Common Diffusion Noise Schedules and Sample Steps are Flawed" (diffusers' rescale_zero_terminal_snr):
  // the betas rescaled so that the last ᾱ is 0, for v-prediction models trained so. DDIM only.
  bool rescale_betas_zero_snr = false;
};

// The tokenizer's padding after the end token: SD v1 pads with <|endoftext|>, SD 2.x with "!" (id 0,
// OpenCLIP's padding). A folder whose tokenizer declares "!" its pad token also splits every "!" of a
// prompt out as that special token, as transformers does (pad_special); single files tokenize "!"
// as text, as OpenCLIP and ComfyUI do.
struct TokenizerConfig {
  std::string pad_token = "<|endoftext|>";
  bool pad_special = false;
};

struct ModelConfig {
  ClipConfig clip;
  TokenizerConfig tokenizer;
  // SDXL's second text encoder (OpenCLIP ViT-bigG) and its tokenizer: its context is concatenated
  // after the first's along the width, and its pooled output feeds the UNet's added conditioning.
  // clip2.layers 0: none (SD v1/2).
  ClipConfig clip2 = ClipConfig::none();
  TokenizerConfig tokenizer2;
  UNetConfig unet;
  VaeConfig vae;
  SchedulerConfig scheduler;
  // diffusers' SDXL pipeline's force_zeros_for_empty_prompt: an empty negative prompt is zero
  // embeddings (and a zero pooled embedding), not the encoded empty text.
  bool force_zeros_for_empty_prompt = false;
  bool sdxl() const { return clip2.layers > 0; }
};

// Stable Diffusion 2.1 768-v (stabilityai/stable-diffusion-2-1): OpenCLIP ViT-H/14's text tower to
// its penultimate layer (23 of 24), 64-wide UNet heads over a 1024-wide context, "!" padding,
// v-prediction. Its VAE is SD v1's.
inline ModelConfig sd21_config() {
  ModelConfig m;
  m.clip.hidden = 1024;
  m.clip.layers = 23;
  m.clip.heads = 16;
  m.clip.intermediate = 4096;
  m.clip.act = "gelu";
  m.tokenizer.pad_token = "!";
  m.unet.cross_attention_dim = 1024;
  m.unet.level_heads = {5, 10, 20, 20};
  m.unet.heads = 5;
  m.unet.upcast_attention = true;
  m.scheduler.prediction_type = "v_prediction";
  return m;
}

// Stable Diffusion XL base 1.0 (stabilityai/stable-diffusion-xl-base-1.0): CLIP ViT-L/14 and OpenCLIP
// ViT-bigG/14 (each to its penultimate layer, 768 + 1280 = 2048 wide), the pooled bigG embedding and
// the six size ids as added conditioning, three UNet levels (no attention at the first; 2 and 10
// transformer blocks), 64-wide heads, its VAE's scaling factor 0.13025 and fp32 decode.
inline ModelConfig sdxl_config() {
  ModelConfig m;
  m.clip.penultimate = true;
  m.clip2.vocab_size = 49408;
  m.clip2.hidden = 1280;
  m.clip2.layers = 32;
  m.clip2.heads = 20;
  m.clip2.intermediate = 5120;
  m.clip2.act = "gelu";
  m.clip2.penultimate = true;
  m.clip2.projection_dim = 1280;
  m.tokenizer2.pad_token = "!";
  m.tokenizer2.pad_special = true;
  m.unet.block_channels = {320, 640, 1280};
  m.unet.down_attention = {false, true, true};
  m.unet.level_heads = {5, 10, 20};
  m.unet.heads = 5;
  m.unet.level_depth = {1, 2, 10};
  m.unet.cross_attention_dim = 2048;
  m.unet.addition_time_embed_dim = 256;
  m.unet.addition_embed_input_dim = 2816;
  m.vae.scaling_factor = 0.13025f;
  m.vae.force_upcast = true;
  m.scheduler.timestep_spacing = "leading";
  m.force_zeros_for_empty_prompt = true;
  return m;
}

}  // namespace sdgen
