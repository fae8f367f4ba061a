#include "core/device_memory.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "sdgen/error.h"

namespace sdgen {

namespace {
CudaMemoryHooks g_cuda;
void (*g_cuda_starter)() = nullptr;

void host_free(void* p) { std::free(p); }

const CudaMemoryHooks& cuda_hooks() {
  // The CUDA backend installs the hooks when it starts; a tensor moved to the device before the
  // first op starts it here, through the starter the backend layer registered.
  if (!g_cuda.alloc && g_cuda_starter) g_cuda_starter();
  if (!g_cuda.alloc && !g_cuda_starter)
    throw_runtime("CUDA memory requested but no CUDA backend is registered (a CPU-only build?)");
  if (!g_cuda.alloc) throw_runtime("CUDA memory requested but the CUDA backend installed no allocator");
  return g_cuda;
}
}  // namespace

void install_cuda_memory_hooks(const CudaMemoryHooks& hooks) { g_cuda = hooks; }
void set_cuda_memory_starter(void (*start)()) { g_cuda_starter = start; }

MetaTally& meta_tally() {
  thread_local MetaTally t;
  return t;
}

void* device_alloc(Device device, size_t bytes, void (**deleter)(void*)) {
  if (device == Device::CPU) {
    // 64-byte alignment for vector loads; aligned_alloc needs a multiple of the alignment.
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) throw_runtime("out of host memory allocating " + std::to_string(bytes) + " bytes");
    *deleter = host_free;
    return p;
  }
  if (device == Device::Meta) {
    MetaTally& t = meta_tally();
    t.live += bytes;
    t.peak = std::max(t.peak, t.live);
    *deleter = nullptr;
    return nullptr;
  }
  const CudaMemoryHooks& h = cuda_hooks();
  *deleter = h.free;
  return h.alloc(bytes);
}

void device_memset(Device device, void* ptr, int value, size_t bytes) {
  if (bytes == 0 || device == Device::Meta) return;
  if (device == Device::CPU) {
    std::memset(ptr, value, bytes);
  } else {
    cuda_hooks().memset(ptr, value, bytes);
  }
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0 || dst_device == Device::Meta) return;
  if (src_device == Device::Meta) throw_runtime("a meta tensor has no values to copy");
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
  int kind = src_device == Device::CPU ? 0 : (dst_device == Device::CPU ? 1 : 2);
  cuda_hooks().copy(dst, src, bytes, kind);
}

}  // namespace sdgen
