// CUDA sampler ops (ops.h, "sampler"): shape bookkeeping around kernels/sampler.cu. Nothing here
// reads a host value that changes from step to step, so a captured step replays correctly.
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"
#include "kernels.h"

namespace sdgen {
namespace cuda {

Tensor CudaBackend::timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim,
                                          DType dtype) {
  Tensor y = Tensor::empty({n, dim}, dtype, Device::CUDA);
  kernels::timestep_embedding_at(timesteps.data_as<float>(), step.data_as<float>(), y.data(), n, dim, dtype,
                                 stream_);
  return y;
}

Tensor CudaBackend::scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times,
                                       DType dtype) {
  Shape s = x.shape();
  s[0] *= times;
  Tensor y = Tensor::empty(s, dtype, Device::CUDA);
  kernels::scale_repeat_batch(x.data_as<float>(), divisors.data_as<float>(), step.data_as<float>(), y.data(), dtype,
                              x.numel(), times, stream_);
  return y;
}

void CudaBackend::sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table, const Tensor& noise,
                               Tensor& step, float guidance) {
  kernels::sampler_step(x.data_as<float>(), state.defined() ? state.data_as<float>() : nullptr,
                        state.defined() ? (int)state.dim(0) : 0, eps.data(), eps.dtype(), table.data_as<float>(),
                        noise.defined() ? noise.data_as<float>() : nullptr, step.data_as<float>(), x.numel(),
                        eps.dim(0) == 2 * x.dim(0), guidance, stream_);
}

void CudaBackend::inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise,
                                const Tensor& table, const Tensor& step) {
  kernels::inpaint_blend(x.data_as<float>(), mask.data_as<float>(), x0.data_as<float>(), noise.data_as<float>(),
                         table.data_as<float>(), step.data_as<float>(), x.numel(), stream_);
}

void CudaBackend::denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step,
                           float guidance, Tensor& out) {
  kernels::denoised(x.data_as<float>(), eps.data(), eps.dtype(), table.data_as<float>(), step.data_as<float>(),
                    out.data_as<float>(), x.numel(), eps.dim(0) == 2 * x.dim(0), guidance, stream_);
}

Tensor CudaBackend::guidance_rescale(const Tensor& eps, float guidance, float phi) {
  Shape s = eps.shape();
  s[0] /= 2;
  Tensor out = Tensor::empty(s, DType::F32, Device::CUDA);
  kernels::guidance_rescale(eps.data(), eps.dtype(), out.data_as<float>(), s[0], eps.numel() / eps.dim(0), guidance,
                            phi, stream_);
  return out;
}

Tensor CudaBackend::add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step,
                                  int64_t column, int64_t row_offset) {
  Tensor out = Tensor::empty(base.shape(), base.dtype(), Device::CUDA);
  const int64_t per = base.dim(0) ? base.numel() / base.dim(0) : 0;
  kernels::add_scaled_at(base.data(), x.data(), base.dtype(), table.data_as<float>(), step.data_as<float>(),
                         table.dim(1), column, out.data(), base.numel(), row_offset * per, x.numel(), stream_);
  return out;
}

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
