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
  kernels::group_norm(x.data(), g.data(), b.data(), y.data(), n, spatial, c, groups, eps,
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
