// The decoder's image as 8-bit pixels: y = rint(clamp(x/2 + 0.5, 0, 1) · 255) (diffusers'
// postprocess; rint rounds half to even as numpy's round does), so only bytes leave the device:
// one download of B·H·W·3 bytes per batch instead of 4 (fp32) per value. NaN becomes 0, on the
// host as here (src/backend/cpu/image.cpp, the reference).
// Layout: flat (NHWC image, every value independent). Versions: v1 one value per thread, v2 four
// per thread (one 16-/8-byte load of fp32/fp16, one 4-byte store) when n and both pointers allow it,
// the tail by v1. Test: simt_tests --gtest_filter='CudaOps*image_u8*'. Benchmark: op_perf_gpu
// --filter image_u8 (a few MB once per batch).
#include "kernels.h"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "common/launch.cuh"

namespace sdgen {
namespace kernels {
namespace {

using kern::to_float;

constexpr int kThreads = 256;

__device__ __forceinline__ uint8_t pixel(float v) {
  float y = v / 2.0f + 0.5f;
  y = y > 0.0f ? y : 0.0f;  // NaN fails the test and becomes 0
  y = y < 1.0f ? y : 1.0f;
  return (uint8_t)rintf(y * 255.0f);
}

template <class T>
__global__ void image_u8_kernel(const T* __restrict__ x, uint8_t* __restrict__ y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = pixel(to_float(x[i]));
}

// Four values per thread: float4 / four halves (or bf16s) in, one uchar4 out.
template <class T>
__global__ void image_u8_vec4_kernel(const T* __restrict__ x, uint8_t* __restrict__ y, int n4) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += gridDim.x * blockDim.x) {
    float v[4];
    if constexpr (sizeof(T) == 4) {
      const float4 q = reinterpret_cast<const float4*>(x)[i];
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      const uint2 q = reinterpret_cast<const uint2*>(x)[i];
      T h[4];
      memcpy(static_cast<void*>(h), &q, 8);
      for (int k = 0; k < 4; ++k) v[k] = to_float(h[k]);
    } else {
      const uint2 q = reinterpret_cast<const uint2*>(x)[i];
      __half2 a, b;  // memcpy: no type punning through pointers (a register move once compiled)
      memcpy(static_cast<void*>(&a), &q.x, 4);
      memcpy(static_cast<void*>(&b), &q.y, 4);
      v[0] = __low2float(a), v[1] = __high2float(a), v[2] = __low2float(b), v[3] = __high2float(b);
    }
    reinterpret_cast<uchar4*>(y)[i] = make_uchar4(pixel(v[0]), pixel(v[1]), pixel(v[2]), pixel(v[3]));
  }
}

template <class T>
void launch(const void* xv, uint8_t* y, int64_t n, cudaStream_t s) {
  const T* x = static_cast<const T*>(xv);
  cuda::note_traffic((double)n * (sizeof(T) + 1));
  int64_t done = 0;
  const bool aligned = reinterpret_cast<uintptr_t>(x) % (4 * sizeof(T)) == 0 && reinterpret_cast<uintptr_t>(y) % 4 == 0;
  if (aligned && n >= 4) {
    const int64_t n4 = n / 4;
    SDGEN_LAUNCH((image_u8_vec4_kernel<T>), cuda::grid_stride_blocks(n4, kThreads), dim3(kThreads), 0, s, x, y, (int)n4);
    done = n4 * 4;
  }
  if (done < n)
    SDGEN_LAUNCH((image_u8_kernel<T>), cuda::grid_stride_blocks(n - done, kThreads), dim3(kThreads), 0, s, x + done,
                 y + done, (int)(n - done));
}

}  // namespace

void image_to_u8(const void* x, DType dt, uint8_t* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  SDGEN_CHECK(n < (int64_t)1 << 31, "image_to_u8: " + std::to_string(n) + " values need 64-bit indices");
  if (dt == DType::F32)
    launch<float>(x, y, n, s);
  else if (dt == DType::BF16)
    launch<__nv_bfloat16>(x, y, n, s);
  else
    launch<__half>(x, y, n, s);
}

}  // namespace kernels
}  // namespace sdgen
