// CPU multi-head attention and softmax. q [N, Lq, H·D], k/v [N, Lk, H·D]; head h is channels
// [h·D, (h+1)·D) of every token, so heads are strided views and nothing is transposed or copied.
// Plain: per query row, the full score row in double, softmax, weighted sum of v rows.
// Fast: per (image, head, block of query rows) two OpenBLAS GEMMs on strided views,
// S = scale·Q·Kᵀ then O = softmax(S)·V, so the score blocks are bounded (256×4096 per thread for
// 64×64 latents, never the 8×4096×4096 whole) and softmax runs on rows that are still in cache.
// bf16 with oneDNN (attention_bf16): the same blocks on bf16 GEMMs (bf16_gemm.cpp), q, k, v read
// as stored and the probabilities rounded to bf16 for the second GEMM.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"

namespace sdgen::cpu {

namespace {

// Score-block budget in floats (4 MB): 256 query rows at Lk = 4096, all rows when Lk is small.
constexpr int64_t kScoreBudget = int64_t(1) << 20;

void attention_plain(const float* q, const float* k, const float* v, int64_t N, int64_t Lq,
                     int64_t Lk, int64_t H, int64_t D, float scale, bool causal, float* out) {
  const int64_t HD = H * D;
#pragma omp parallel
  {
    std::vector<double> s((size_t)Lk), o((size_t)D);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N * Lq; ++r) {
      const int64_t n = r / Lq, i = r % Lq;
      const int64_t visible = causal ? std::min(Lk, i + 1) : Lk;
      for (int64_t h = 0; h < H; ++h) {
        const float* qi = q + r * HD + h * D;
        const float* kh = k + n * Lk * HD + h * D;
        const float* vh = v + n * Lk * HD + h * D;
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < visible; ++j) {
          s[j] = (double)scale * dot_d(qi, kh + j * HD, D);
          m = std::max(m, s[j]);
        }
        double sum = 0.0;
        std::fill(o.begin(), o.end(), 0.0);
        for (int64_t j = 0; j < visible; ++j) {
          const double p = std::exp(s[j] - m);
          sum += p;
          for (int64_t d = 0; d < D; ++d) o[d] += p * vh[j * HD + d];
        }
        for (int64_t d = 0; d < D; ++d) out[r * HD + h * D + d] = (float)(o[d] / sum);
      }
    }
  }
}

// The fast paths' work split: one task = one (image, head, block of query rows).
struct TaskSplit {
  int64_t Lq, Lk, H, block, blocks, tasks;
  TaskSplit(int64_t N, int64_t Lq_, int64_t Lk_, int64_t H_) : Lq(Lq_), Lk(Lk_), H(H_) {
    block = std::min(Lq, std::max<int64_t>(16, kScoreBudget / Lk));
    blocks = (Lq + block - 1) / block;
    tasks = N * H * blocks;
  }
};
struct Task {
  int64_t n, h, i0, rows, keys;
};
Task task_at(const TaskSplit& s, int64_t t, bool causal) {
  Task k;
  k.n = t / (s.H * s.blocks), k.h = (t / s.blocks) % s.H, k.i0 = (t % s.blocks) * s.block;
  k.rows = std::min(s.block, s.Lq - k.i0);
  // Causal: no row of this block sees past key i0+rows-1, so those columns are skipped.
  k.keys = causal ? std::min(s.Lk, k.i0 + k.rows) : s.Lk;
  return k;
}

// Softmax of a score block's rows (query rows i0.., keys columns), causal rows zero past the diagonal.
void softmax_block(float* sb, int64_t rows, int64_t keys, int64_t i0, bool causal) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = sb + r * keys;
    const int64_t visible = causal ? std::min(keys, i0 + r + 1) : keys;
    softmax_row(row, visible);
    std::fill(row + visible, row + keys, 0.0f);
  }
}

void attention_fast(const float* q, const float* k, const float* v, int64_t N, int64_t Lq,
                    int64_t Lk, int64_t H, int64_t D, float scale, bool causal, float* out) {
  const int64_t HD = H * D;
  const TaskSplit split(N, Lq, Lk, H);
  // One task: GEMM, softmax, GEMM on the thread's own score buffer, so the block never leaves
  // that core's cache between the three steps.
#pragma omp parallel num_threads((int)std::min <int64_t>(omp_get_max_threads(), split.tasks))
  {
    float* scores = thread_scratch(1, (size_t)(split.block * Lk));
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < split.tasks; ++t) {
      const Task w = task_at(split, t, causal);
      const float* kh = k + w.n * Lk * HD + w.h * D;
      gemm_nt(w.rows, w.keys, D, scale, q + (w.n * Lq + w.i0) * HD + w.h * D, HD, kh, HD, 0.0f, scores, w.keys);
      softmax_block(scores, w.rows, w.keys, w.i0, causal);
      gemm_nn(w.rows, D, w.keys, 1.0f, scores, w.keys, v + w.n * Lk * HD + w.h * D, HD, 0.0f,
              out + (w.n * Lq + w.i0) * HD + w.h * D, HD);
    }
  }
}

// attention_fast on bf16 q, k, v with oneDNN's bf16 GEMMs (bf16_gemm.cpp): scores and softmax in
// fp32, the probabilities rounded to bf16 for the second GEMM (as PyTorch's bf16 attention does),
// both GEMMs accumulating in fp32.
void attention_bf16_fast(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t N, int64_t Lq,
                         int64_t Lk, int64_t H, int64_t D, float scale, bool causal, float* out) {
  const int64_t HD = H * D;
  const TaskSplit split(N, Lq, Lk, H);
#pragma omp parallel num_threads((int)std::min <int64_t>(omp_get_max_threads(), split.tasks))
  {
    float* scores = thread_scratch(1, (size_t)(split.block * Lk));
    uint16_t* probs = reinterpret_cast<uint16_t*>(thread_scratch(2, (size_t)(split.block * Lk + 1) / 2));
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < split.tasks; ++t) {
      const Task w = task_at(split, t, causal);
      const uint16_t* kh = k + w.n * Lk * HD + w.h * D;
      gemm_nt_bf16(w.rows, w.keys, D, scale, q + (w.n * Lq + w.i0) * HD + w.h * D, HD, kh, HD, nullptr, 0.0f,
                   scores, DType::F32, w.keys);
      softmax_block(scores, w.rows, w.keys, w.i0, causal);
      narrow_bf16(scores, probs, w.rows * w.keys);
      gemm_nn_bf16(w.rows, D, w.keys, 1.0f, probs, w.keys, v + w.n * Lk * HD + w.h * D, HD, 0.0f,
                   out + (w.n * Lq + w.i0) * HD + w.h * D, HD);
    }
  }
}

}  // namespace

Tensor attention_bf16(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal) {
  const int64_t N = q.dim(0), Lq = q.dim(1), Lk = k.dim(1), HD = q.dim(2);
  Tensor out = Tensor::empty(q.shape());
  if (out.numel() == 0) return out;
  if (Lk == 0) {  // as attention(): an empty sum is zeros
    std::memset(out.data(), 0, out.nbytes());
    return out;
  }
  attention_bf16_fast(q.data_as<uint16_t>(), k.data_as<uint16_t>(), v.data_as<uint16_t>(), N, Lq, Lk, heads,
                      HD / heads, scale, causal, out.f32());
  return out;
}

// Reductions run on kLanes independent partial results: an `omp simd reduction(max)` over
// std::max compiled to a serial chain here (0.5 ns per element, more than the exp).
SDGEN_CPU_CLONES
void softmax_row(float* row, int64_t n) {
  constexpr int kLanes = 32;
  float lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] = row[j + l] > lane[l] ? row[j + l] : lane[l];
  float m = -std::numeric_limits<float>::infinity();
  for (int l = 0; l < kLanes; ++l) m = lane[l] > m ? lane[l] : m;
  for (; j < n; ++j) m = row[j] > m ? row[j] : m;
  // A NaN never wins a comparison, but exp(NaN - m) below still turns the whole row NaN.
  for (int l = 0; l < kLanes; ++l) lane[l] = 0.0f;
  for (j = 0; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float e = exp_approx(row[j + l] - m);
      row[j + l] = e;
      lane[l] += e;
    }
  }
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += lane[l];
  for (; j < n; ++j) {
    row[j] = exp_approx(row[j] - m);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (j = 0; j < n; ++j) row[j] *= inv;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                 bool causal, bool plain) {
  const int64_t N = q.dim(0), Lq = q.dim(1), Lk = k.dim(1), HD = q.dim(2);
  const int64_t D = HD / heads;
  Tensor out = Tensor::empty(q.shape());
  if (out.numel() == 0) return out;
  if (Lk == 0) {  // nothing to attend to: an empty sum (PyTorch gives NaN; zeros are kinder)
    std::memset(out.data(), 0, out.nbytes());
    return out;
  }
  if (plain) {
    attention_plain(q.f32(), k.f32(), v.f32(), N, Lq, Lk, heads, D, scale, causal, out.f32());
  } else {
    attention_fast(q.f32(), k.f32(), v.f32(), N, Lq, Lk, heads, D, scale, causal, out.f32());
  }
  return out;
}

Tensor softmax(const Tensor& x, bool plain) {
  const int64_t C = x.dim(-1);
  const int64_t M = C ? x.numel() / C : 0;
  Tensor y = x.clone();
  float* yp = y.f32();
  if (!plain) {
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; ++m) softmax_row(yp + m * C, C);
    return y;
  }
  const float* xp = x.f32();
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = xp + m * C;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, (double)xr[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(xr[c] - mx);
    for (int64_t c = 0; c < C; ++c) yp[m * C + c] = (float)(std::exp(xr[c] - mx) / sum);
  }
  return y;
}

}  // namespace sdgen::cpu
