// CUDA multi-head attention: one flash-attention launch (kernels/attention.cu) covers every
// (image, head, query tile), so the [Lq, Lk] scores never reach device memory (the unfused
// cuBLAS + softmax version it replaces wrote 64 MiB of them per head at 4096 tokens).
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

Tensor CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                              float scale, bool causal) {
  DType dt = q.dtype();
  int64_t N = q.dim(0), Lq = q.dim(1), Lk = k.dim(1), HD = q.dim(2), D = HD / heads;
  Tensor out = Tensor::empty(q.shape(), dt, Device::CUDA);
  if (out.numel() == 0) return out;
  Tensor kk = as(k, dt), vv = as(v, dt);
  kernels::attention(q.data(), kk.data(), vv.data(), out.data(), N, Lq, Lk, heads, D, scale,
                     causal, dt, stream_);
  return out;
}

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
