// Device memory for the CUDA backend: a caching pool and the transfers between host and device,
// all ordered on the backend's one stream.
//
// The pool never returns memory to the driver while the program runs (cudaMalloc and cudaFree
// cost tens of microseconds and cudaFree synchronizes the device): a freed block goes to a free
// list by size and the next request of that size takes it. With a single stream this reuse is
// safe without events: work that used the block was issued earlier on the same stream. Every
// step of the denoising loop asks for the same sizes in the same order, so after the planning
// pass (the step recorded once before the loop, Pipeline::generate) the loop allocates nothing.
// Blocks allocated while a graph is recorded belong to that graph until it is destroyed: its
// replays write them, so no one else may be handed them in between.
//
// Transfers go through two pinned staging buffers: a host → device copy is a memcpy into one of
// them and an asynchronous copy on the stream (the caller's memory is free to change at once); a
// device → host copy waits for the stream, as the caller is about to read the result.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

namespace sdgen {
namespace cuda {

// The stream every kernel, library call and copy of the backend is issued on.
void set_stream(cudaStream_t stream);
cudaStream_t stream();

// Installs the pool and the transfers as the device memory hooks of src/core/device_memory.h.
void install_memory_hooks();

// Recording a graph: blocks allocated until end_graph_allocations() belong to the returned graph id
// (they are reused within the recording in stream order, and kept from everyone else until
// release_graph_allocations(id)).
void begin_graph_allocations();
int end_graph_allocations();
void release_graph_allocations(int graph);

// Gives the free blocks of the common cache back to the driver (cudaFree: synchronizes). Between
// stages whose buffers differ in size (the UNet's and the VAE's), so their peaks do not add up.
void release_cached_memory();

// The most bytes the pool has held from the driver at once (sd-gen --json: peak_device_bytes).
size_t pool_peak_reserved_bytes();

}  // namespace cuda
}  // namespace sdgen
