// Raw memory per device. The CPU side is aligned host memory; the CUDA side is provided by the CUDA
// backend (src/backend/cuda/) when it is built, and these functions forward to it.
#pragma once
#include <cstddef>
#include <cstdint>

#include "sdgen/tensor.h"

namespace sdgen {

void* device_alloc(Device device, size_t bytes, void (**deleter)(void*));
// Host blocks of 1 MiB and more are kept when freed and reused (device_memory.cpp), never holding
// more than the most ever live at once. This returns the kept ones to the system and lowers that
// mark to what is live now, so that a new model's run (Pipeline's constructor) is held to its own.
void release_kept_host_blocks();
struct HostBlockStats {
  size_t kept = 0, live = 0, high = 0;  // bytes kept for reuse, in use, most ever in use
};
HostBlockStats host_block_stats();  // tests
// Sets bytes to `value`; asynchronous on a device (ordered with its other work).
void device_memset(Device device, void* ptr, int value, size_t bytes);
// Copies; a copy to the host has completed on return, one to a device may still be in flight
// (the source may change at once).
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

// Hooks the CUDA backend installs at start-up (kept as plain function pointers so that the core
// library does not depend on the CUDA runtime).
struct CudaMemoryHooks {
  void* (*alloc)(size_t bytes) = nullptr;
  void (*free)(void* ptr) = nullptr;
  void (*memset)(void* ptr, int value, size_t bytes) = nullptr;
  // kind: 0 host->device, 1 device->host, 2 device->device
  void (*copy)(void* dst, const void* src, size_t bytes, int kind) = nullptr;
};
void install_cuda_memory_hooks(const CudaMemoryHooks& hooks);
// What starts the CUDA backend (which installs the hooks) when memory is asked of the device before
// any op ran there. The backend layer registers it with the backend's factory: core, the layer
// below, does not call the backend itself.
void set_cuda_memory_starter(void (*start)());

// Device::Meta holds no bytes: its allocations are only tallied, with the FLOPs of the meta
// backend's ops, per thread (a dry pass runs on the thread that asks for it).
struct MetaTally {
  double flops = 0;
  uint64_t live = 0;  // bytes of the meta tensors alive now
  uint64_t peak = 0;  // the most alive at once since the owner last set it
};
MetaTally& meta_tally();

}  // namespace sdgen
