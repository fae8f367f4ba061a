// The op interface the models are written against. Each op checks shapes and dtypes here, once,
// then runs on the backend of its inputs' device (sdgen::backend_for). Layouts:
//   images     NHWC  [N, H, W, C]
//   sequences        [N, L, C]      (an NHWC image is a sequence of H*W tokens without a copy)
//   linear weights   [out, in]      (as in PyTorch checkpoints)
//   conv weights     [Cout, KH, KW, Cin] (OHWI; checkpoints' OIHW is converted at load)
// Outputs have the inputs' dtype; internal math is fp32 (norm and softmax statistics always fp32).
#pragma once
#include <vector>

#include "sdgen/tensor.h"

namespace sdgen::ops {

// 2-D convolution, square kernel, zero padding. bias may be undefined. add (optional) is added to
// the result: the output's shape [N, Ho, Wo, Cout] (a resnet's shortcut) or [N, Cout], broadcast
// over the positions (a resnet's time embedding); on CUDA both are fused into the convolution's
// cuDNN graph and rounded once.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride, int padding,
              const Tensor& add = Tensor());
// y = x · wᵀ + bias + residual over the last dim. bias and residual may be undefined; residual has
// y's shape (the transformer's skip connections, added inside the GEMM's epilogue on CUDA and
// rounded once).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor(), const Tensor& residual = Tensor());
// Group norm over x [N, ..., C] (all middle dims are spatial); optional fused SiLU after the affine.
Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                  bool fuse_silu);
// Layer norm over the last dim.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
// Multi-head scaled dot-product attention. q [N, Lq, H*D], k and v [N, Lk, H*D] -> [N, Lq, H*D].
// causal: query i sees keys 0..i (CLIP).
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                 bool causal);
// Softmax over the last dim.
Tensor softmax(const Tensor& x);
Tensor silu(const Tensor& x);        // x·σ(x)
Tensor quick_gelu(const Tensor& x);  // x·σ(1.702x)
Tensor gelu(const Tensor& x);        // exact: x·Φ(x) = 0.5x(1+erf(x/√2))
Tensor relu(const Tensor& x);        // max(x, 0); NaN stays NaN (as torch.relu)
Tensor tanh(const Tensor& x);        // tanh(x) (the tiny autoencoder's soft clamp of its latents)
// x [..., 2C] -> [..., C]: first half value, second half gate, value·gelu(gate) (exact erf).
Tensor geglu(const Tensor& x);
// a + b, same shape.
Tensor add(const Tensor& a, const Tensor& b);
// x [N, ..., C] + b [N, C] broadcast over the middle dims (the resnet's time embedding).
Tensor add_channel(const Tensor& x, const Tensor& b);
// x · s
Tensor scale(const Tensor& x, float s);
// Nearest-neighbour upsampling ×2: [N, H, W, C] -> [N, 2H, 2W, C].
Tensor upsample_nearest2x(const Tensor& x);
// Zero padding of an NHWC image: [N, H, W, C] -> [N, top+H+bottom, left+W+right, C], the new rows
// and columns zero (every count >= 0). The VAE encoder's downsampler pads (0, 1, 0, 1): one row at
// the bottom and one column at the right, before its stride-2 convolution without padding.
Tensor pad(const Tensor& x, int top, int bottom, int left, int right);
// Concatenation along the last dim: [..., Ca] ++ [..., Cb] -> [..., Ca+Cb].
Tensor concat_channels(const Tensor& a, const Tensor& b);
// Rows of table [V, D] for ids (host, n * L of them) -> [n, L, D] in the table's dtype.
Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table, Device device);
// Sinusoidal timestep embedding [n, dim], cos half first (diffusers flip_sin_to_cos=True, shift 0).
Tensor timestep_embedding(const std::vector<float>& timesteps, int dim, DType dtype, Device device);
// Same values in another dtype (fp32 <-> fp16, round to nearest even).
Tensor cast(const Tensor& x, DType dtype);
// The decoder's image x [N, H, W, C] (fp32 or fp16, roughly in [-1, 1]) as 8-bit pixels, written
// into out (U8, x's shape and device; a slice0 view of a larger batch works): diffusers'
// postprocess, clamp(x/2 + 0.5, 0, 1) in fp32, then ·255 rounded half to even (numpy's round).
void image_to_u8(const Tensor& x, Tensor& out);

// ---- the sampler: the denoising loop's state lives in tensors on the model's device, so a step
// reads no host value and can be recorded once as a CUDA graph and replayed ----
// timestep_embedding for timesteps[step] (timesteps [S] fp32, step [1] fp32 holding an index),
// repeated for n rows: [n, dim] in dtype.
Tensor timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim, DType dtype);
// x [B, ...] / divisors[step], repeated `times` times along the batch -> [times·B, ...] in dtype:
// the UNet input (guidance runs the UNet on the latents twice, unconditional rows first; the
// sigma-space samplers divide by √(σ² + 1), the others by 1); divisors [S] fp32.
Tensor scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times, DType dtype);
// One unit of a sampler plan (src/sampler/sampler.h) in place, then step += 1. Per element, with
// v = (x, ε, s_0 … s_{K−1}, z) and A = table row `step` viewed as [1+K, 3+K]:
//   x ← Σ_j A[0][j]·v_j ,  s_k ← Σ_j A[1+k][j]·v_j   (all from the old values, fp32, j in order)
// eps: [2B, ...] (unconditional rows first; ε = ε_u + guidance·(ε_c − ε_u)) or [B, ...] (no
// guidance: ε itself), in any dtype, math in fp32; state [K, B, ...]
// fp32 (undefined: K = 0); noise [S, B, ...] fp32, row `step` (undefined: z = 0); table
// [S, (1+K)·(3+K)] fp32.
void sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table, const Tensor& noise,
                  Tensor& step, float guidance);
// diffusers' guidance_rescale (rescale_noise_cfg, "Common Diffusion Noise Schedules and Sample Steps
// are Flawed" §3.4): eps [2B, ...] (unconditional rows first) in any dtype; returns [B, ...] fp32 on
// eps's device, per sample b, with g = ε_u + guidance·(ε_c − ε_u) as sampler_step guides and
// r = std(ε_c[b]) / std(g[b]) (standard deviations over the sample's values, n − 1 in the denominator,
// accumulated in double):
//   out ← phi·(g·r) + (1 − phi)·g      (each product and the sum in fp32)
// sampler_step and denoised then take it as ε itself (B rows: no guidance).
Tensor guidance_rescale(const Tensor& eps, float guidance, float phi);
// The unit's denoised estimate (the x0 a preview shows), before its sampler_step: with (a, b) =
// table row `step` (sampler.h, SamplerPlan::denoised),
//   out ← a·x + b·ε     (ε guided as sampler_step guides it; each product and the sum in fp32)
// x, out [B, ...] fp32 on one device; eps as sampler_step's; table [S, 2] fp32; step [1].
void denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step, float guidance,
              Tensor& out);
// Inpainting with a regular (4-channel) model, after a sampler_step (which advanced step to u + 1):
// the known region goes back to the picture's latents noised to the level after unit u, as
// diffusers' StableDiffusionInpaintPipeline does each step. With (a, b) = table row u = step − 1:
//   proper = a·x0 + b·noise ;  x ← (1 − mask)·proper + mask·x      (each product and sum in fp32)
// mask 1 where the picture is repainted. x, mask, x0, noise: the same shape, fp32, one device;
// table [S, 2] fp32, step [1].
void inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise, const Tensor& table,
                   const Tensor& step);
// A ControlNet residual added to a UNet skip at the unit's conditioning scale (diffusers'
// `down_block_res_sample + residual · scale`): with s = table[step][column],
//   out ← base, then rows [row_offset, row_offset + M) of it += s·x     (s·x and the sum in fp32)
// base [N, ...], x [M, ...] with the same per-row size and dtype; the other rows stay base's (guess
// mode's unconditional rows, which diffusers adds zeros to). table [S, C] fp32, step [1] fp32.
Tensor add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step, int64_t column,
                     int64_t row_offset);

}  // namespace sdgen::ops
