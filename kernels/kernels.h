// Host-callable launchers for the hand-written kernels in kernels/*.cu: the CUDA backend
// (src/backend/cuda/) calls these and never launches a kernel itself. Pointers are device memory;
// `dt` is the element type of every tensor argument (fp32 or fp16; the math inside is fp32).
// Launches are asynchronous on `stream` under CUDA and complete before returning in the emulator.
// Every launcher accepts n == 0 (and then launches nothing).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "sdgen/backend.h"
#include "sdgen/tensor.h"

namespace sdgen {
namespace kernels {

// elementwise.cu
void unary(const void* x, void* y, int64_t n, Backend::Unary op, DType dt, cudaStream_t s);
// x [rows, 2c] -> y [rows, c]: value · gelu(gate), exact erf GELU.
void geglu(const void* x, void* y, int64_t rows, int64_t c, DType dt, cudaStream_t s);
void add(const void* a, const void* b, void* y, int64_t n, DType dt, cudaStream_t s);
// x [batch, spatial, c] + b [batch, c]
void add_channel(const void* x, const void* b, void* y, int64_t batch, int64_t spatial, int64_t c,
                 DType dt, cudaStream_t s);
void scale(const void* x, float factor, void* y, int64_t n, DType dt, cudaStream_t s);
// NHWC [n, h, w, c] -> [n, 2h, 2w, c]
void upsample_nearest2x(const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c,
                        DType dt, cudaStream_t s);
// [rows, ca] ++ [rows, cb] -> [rows, ca + cb]
void concat_channels(const void* a, const void* b, void* y, int64_t rows, int64_t ca, int64_t cb,
                     DType dt, cudaStream_t s);
// Round to nearest even on fp32 -> fp16.
void cast(const void* x, DType from, void* y, DType to, int64_t n, cudaStream_t s);
// y [count, dim] = table rows ids[0..count) (ids in device memory).
void embedding(const int* ids, const void* table, void* y, int64_t count, int64_t dim, DType dt,
               cudaStream_t s);

// pad.cu: NHWC x [n, h, w, c] -> y [n, top+h+bottom, left+w+right, c], zeros around (ops::pad).
void pad(const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c, int top, int bottom, int left,
         int right, DType dt, cudaStream_t s);

// image.cu: the decoder's image x [n] (dt) as 8-bit pixels y [n] (ops::image_to_u8).
void image_to_u8(const void* x, DType dt, uint8_t* y, int64_t n, cudaStream_t s);

// groupnorm.cu: x [batch, spatial, c] (NHWC), `groups` divides c; optional fused SiLU. workspace:
// group_norm_workspace_floats(...) floats of device memory (per-split sums and the statistics).
int64_t group_norm_workspace_floats(int64_t batch, int64_t spatial, int64_t c, int groups, DType dt);
void group_norm(const void* x, const void* gamma, const void* beta, void* y, float* workspace, int64_t batch,
                int64_t spatial, int64_t c, int groups, float eps, bool silu, DType dt, cudaStream_t s);
// layernorm.cu: x [rows, c], normalized over c.
void layer_norm(const void* x, const void* gamma, const void* beta, void* y, int64_t rows,
                int64_t c, float eps, DType dt, cudaStream_t s);
// softmax.cu: x [rows, cols], softmax over cols.
void softmax(const void* x, void* y, int64_t rows, int64_t cols, DType dt, cudaStream_t s);
// attention.cu: flash attention, out = softmax(scale·q·kᵀ)·v per (image, head) in one launch, the
// scores never leaving the chip. q, out [n, lq, heads·d], k, v [n, lk, heads·d]; head h is columns
// [h·d, (h+1)·d); causal: query i sees keys 0..i. lk = 0 gives zeros.
void attention(const void* q, const void* k, const void* v, void* out, int64_t n, int64_t lq,
               int64_t lk, int heads, int64_t d, float scale, bool causal, DType dt,
               cudaStream_t s);

// sampler.cu: the denoising step on the device (ops.h, "sampler"). step points to one float
// holding the step index; sampler_step advances it after the update.
void timestep_embedding_at(const float* timesteps, const float* step, void* y, int64_t n, int64_t dim,
                           DType dt, cudaStream_t s);
// y [times·n] in `to` = x [n] / divisors[*step].
void scale_repeat_batch(const float* x, const float* divisors, const float* step, void* y, DType to, int64_t n,
                        int times, cudaStream_t s);
// One sampler-plan unit (ops::sampler_step): x [n], state [K, n] (K <= 4; null when 0), eps [2n] or
// [n] in eps_dt, table [S, (1+K)(3+K)], noise [S, n] or null; advances step.
void sampler_step(float* x, float* state, int K, const void* eps, DType eps_dt, const float* table,
                  const float* noise, float* step, int64_t n, bool guided, float guidance, cudaStream_t s);
// ops::inpaint_blend: x [n] ← (1 − mask)·(a·x0 + b·noise) + mask·x with (a, b) = table[*step − 1].
void inpaint_blend(float* x, const float* mask, const float* x0, const float* noise, const float* table,
                   const float* step, int64_t n, cudaStream_t s);
// ops::guidance_rescale: out [rows·per] fp32 from eps [2·rows·per] (unconditional rows first).
void guidance_rescale(const void* eps, DType eps_dt, float* out, int64_t rows, int64_t per, float guidance, float phi,
                      cudaStream_t s);
// ops::denoised: out [n] ← a·x + b·ε with (a, b) = table[*step], ε guided (eps [2n]) or not ([n]).
void denoised(const float* x, const void* eps, DType eps_dt, const float* table, const float* step, float* out,
              int64_t n, bool guided, float guidance, cudaStream_t s);
// ops::add_scaled_at: out [n] ← base, and out[begin + i] += s·x[i] for i < m, with s = table[*step][column]
// (table rows of `columns`); base, x, out in dt.
void add_scaled_at(const void* base, const void* x, DType dt, const float* table, const float* step, int64_t columns,
                   int64_t column, void* out, int64_t n, int64_t begin, int64_t m, cudaStream_t s);

}  // namespace kernels
}  // namespace sdgen
