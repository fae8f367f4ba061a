// The CUDA backend's device memory pool and transfers (cuda_memory.h).
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_memory.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/check.h"
#include "core/device_memory.h"
#include "sdgen/error.h"

namespace sdgen {
namespace cuda {

namespace {

cudaStream_t g_stream = nullptr;

// Sizes round up to 512 bytes (cudaMalloc aligns to at least 256; 512 keeps fp16 vectors aligned
// and merges near-equal requests into one size class).
constexpr size_t kGranule = 512;

class Pool {
 public:
  void* allocate(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t size = (std::max<size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule;
    void* p = take(recording_, size);
    if (!p && recording_) {
      p = take(0, size);
      if (p) blocks_[p].owner = recording_;
    }
    if (!p) p = fresh(size);
    live_ += size;
    return p;
  }

  void release(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(p);
    if (it == blocks_.end()) return;  // not ours: a deleter must not throw
    Block& b = it->second;
    if (b.owner && !graphs_alive_.count(b.owner) && b.owner != recording_) b.owner = 0;
    live_ -= b.size;
    free_[{b.owner, b.size}].push_back(p);
  }

  void begin_graph() {
    std::lock_guard<std::mutex> lock(mu_);
    recording_ = next_graph_++;
  }
  int end_graph() {
    std::lock_guard<std::mutex> lock(mu_);
    const int id = recording_;
    graphs_alive_[id] = true;
    recording_ = 0;
    return id;
  }
  void release_graph(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    graphs_alive_.erase(id);
    for (auto& [p, b] : blocks_)
      if (b.owner == id) b.owner = 0;
    for (auto it = free_.begin(); it != free_.end();) {
      if (it->first.first != id) {
        ++it;
        continue;
      }
      auto& common = free_[{0, it->first.second}];
      common.insert(common.end(), it->second.begin(), it->second.end());
      it = free_.erase(it);
    }
  }

  void trim_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    trim();
  }

  size_t peak_reserved() const { return peak_reserved_; }

 private:
  struct Block {
    size_t size;
    int owner;  // 0: common; else the graph that owns it
  };

  void* take(int owner, size_t size) {
    auto it = free_.find({owner, size});
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }

  void* fresh(size_t size) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation && recording_ == 0) {
      // Give the common cache back to the driver and try once more; not while a step is being
      // recorded, where cudaFree is not permitted (and would invalidate the capture).
      (void)cudaGetLastError();
      trim();
      e = cudaMalloc(&p, size);
    }
    if (e == cudaErrorMemoryAllocation)
      throw_runtime("out of GPU memory allocating " + std::to_string(size) + " bytes (" +
                    std::to_string(live_ >> 20) + " MiB in use, " + std::to_string(reserved_ >> 20) +
                    " MiB held by the pool)");
    SDGEN_CUDA_CHECK(e);
    blocks_[p] = Block{size, recording_};
    reserved_ += size;
    peak_reserved_ = std::max(peak_reserved_, reserved_);
    return p;
  }

  void trim() {
    for (auto it = free_.begin(); it != free_.end();) {
      if (it->first.first != 0) {
        ++it;
        continue;
      }
      for (void* p : it->second) {
        reserved_ -= blocks_[p].size;
        blocks_.erase(p);
        cudaFree(p);
      }
      it = free_.erase(it);
    }
  }

  std::mutex mu_;
  std::unordered_map<void*, Block> blocks_;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_;
  std::map<int, bool> graphs_alive_;
  int recording_ = 0, next_graph_ = 1;
  size_t reserved_ = 0, live_ = 0, peak_reserved_ = 0;  // live_: for the out-of-memory message
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: tensors may outlive static destruction order
  return *p;
}

// Two pinned buffers, alternated, each with an event that says when the device has read it.
class Staging {
 public:
  static constexpr size_t kChunk = size_t(16) << 20;

  void upload(void* dst, const void* src, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    init();
    for (size_t off = 0; off < bytes; off += kChunk) {
      const size_t n = std::min(kChunk, bytes - off);
      Buffer& b = next();
      std::memcpy(b.host, static_cast<const char*>(src) + off, n);
      SDGEN_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, b.host, n, cudaMemcpyHostToDevice, g_stream));
      SDGEN_CUDA_CHECK(cudaEventRecord(b.done, g_stream));
      b.pending = true;
    }
  }

  void download(void* dst, const void* src, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    init();
    for (size_t off = 0; off < bytes; off += kChunk) {
      const size_t n = std::min(kChunk, bytes - off);
      Buffer& b = next();
      SDGEN_CUDA_CHECK(cudaMemcpyAsync(b.host, static_cast<const char*>(src) + off, n, cudaMemcpyDeviceToHost, g_stream));
      SDGEN_CUDA_CHECK(cudaStreamSynchronize(g_stream));  // the caller reads the result next
      std::memcpy(static_cast<char*>(dst) + off, b.host, n);
      b.pending = false;
    }
  }

 private:
  struct Buffer {
    void* host = nullptr;
    cudaEvent_t done = nullptr;
    bool pending = false;
  };
  void init() {
    if (buffers_[0].host) return;
    for (Buffer& b : buffers_) {
      SDGEN_CUDA_CHECK(cudaMallocHost(&b.host, kChunk));
      SDGEN_CUDA_CHECK(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming));
    }
  }
  // The other buffer, once the device has finished reading it.
  Buffer& next() {
    which_ ^= 1;
    Buffer& b = buffers_[which_];
    if (b.pending) SDGEN_CUDA_CHECK(cudaEventSynchronize(b.done));
    b.pending = false;
    return b;
  }
  std::mutex mu_;
  Buffer buffers_[2];
  int which_ = 0;
};

Staging& staging() {
  static Staging* s = new Staging;
  return *s;
}

void* hook_alloc(size_t bytes) { return pool().allocate(bytes); }
void hook_free(void* p) { pool().release(p); }
void hook_memset(void* p, int value, size_t bytes) {
  SDGEN_CUDA_CHECK(cudaMemsetAsync(p, value, bytes, g_stream));
}
void hook_copy(void* dst, const void* src, size_t bytes, int kind) {
  if (kind == 0) return staging().upload(dst, src, bytes);
  if (kind == 1) return staging().download(dst, src, bytes);
  SDGEN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
}

}  // namespace

void set_stream(cudaStream_t s) { g_stream = s; }
cudaStream_t stream() { return g_stream; }

void install_memory_hooks() {
  CudaMemoryHooks h;
  h.alloc = hook_alloc;
  h.free = hook_free;
  h.memset = hook_memset;
  h.copy = hook_copy;
  install_cuda_memory_hooks(h);
}

void release_cached_memory() { pool().trim_cache(); }
void begin_graph_allocations() { pool().begin_graph(); }
int end_graph_allocations() { return pool().end_graph(); }
void release_graph_allocations(int graph) { pool().release_graph(graph); }
size_t pool_peak_reserved_bytes() { return pool().peak_reserved(); }

}  // namespace cuda
}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
