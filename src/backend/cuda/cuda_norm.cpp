// CUDA group norm (optionally fused with SiLU), layer norm and softmax: shape bookkeeping around
// kernels/groupnorm.cu, layernorm.cu, softmax.cu. Parameters are cast to the activation's dtype.
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

Tensor CudaBackend::group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               int groups, float eps, bool fuse_silu) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  Tensor g = as(gamma, x.dtype()), b = as(beta, x.dtype());
  int64_t n = x.dim(0), c = x.dim(-1);
  int64_t spatial = n && c ? x.numel() / (n * c) : 0;
  if (y.numel() == 0) return y;
  // The per-split sums and statistics: a pool buffer, reused by later work on this stream only.
  Tensor work = Tensor::empty({kernels::group_norm_workspace_floats(n, spatial, c, groups, x.dtype())}, DType::F32,
                              Device::CUDA);
  kernels::group_norm(x.data(), g.data(), b.data(), y.data(), work.data_as<float>(), n, spatial, c, groups, eps,
                      fuse_silu, x.dtype(), stream_);
  return y;
}

Tensor CudaBackend::layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               float eps) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  Tensor g = as(gamma, x.dtype()), b = as(beta, x.dtype());
  int64_t c = x.dim(-1);
  kernels::layer_norm(x.data(), g.data(), b.data(), y.data(), c ? x.numel() / c : 0, c, eps,
                      x.dtype(), stream_);
  return y;
}

Tensor CudaBackend::softmax(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  int64_t c = x.dim(-1);
  kernels::softmax(x.data(), y.data(), c ? x.numel() / c : 0, c, x.dtype(), stream_);
  return y;
}

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
