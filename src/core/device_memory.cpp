#include "core/device_memory.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "sdgen/error.h"

namespace sdgen {

namespace {
CudaMemoryHooks g_cuda;
void (*g_cuda_starter)() = nullptr;

void host_free(void* p) { std::free(p); }

// Large host blocks are kept when freed and handed out again. glibc maps every block above 32 MB
// afresh and unmaps it on free, so each new activation of a 512×512 VAE decode (128 MB and more)
// faulted in and zeroed its pages again: a fifth of the decode's time went to the kernel. A request
// takes the smallest kept block of its size or up to a sixteenth larger. The resident set stays
// within the most these blocks ever held live at once (what it peaks at without keeping): kept and
// live bytes together never exceed that high-water mark, so a request that finds no block releases
// kept blocks, largest first, until the new one fits under it (all of them when the new one raises
// it). Off under AddressSanitizer, whose use-after-free checks need the frees.
constexpr size_t kKeepFrom = size_t(1) << 20;  // smaller blocks: glibc's heap reuses them already
constexpr size_t kHeader = 64;                 // the block's size, ahead of the 64-byte aligned data

class HostBlocks {
 public:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(m_);
      size_t best = blocks_.size();
      for (size_t i = 0; i < blocks_.size(); ++i)
        if (blocks_[i].second >= bytes && blocks_[i].second - bytes <= bytes / 16 &&
            (best == blocks_.size() || blocks_[i].second < blocks_[best].second))
          best = i;
      if (best != blocks_.size()) {
        void* base = blocks_[best].first;
        kept_ -= blocks_[best].second;
        live_ += blocks_[best].second;
        blocks_.erase(blocks_.begin() + (std::ptrdiff_t)best);
        return static_cast<char*>(base) + kHeader;
      }
      const size_t ceiling = std::max(high_, live_ + bytes);
      std::sort(blocks_.begin(), blocks_.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
      while (!blocks_.empty() && live_ + kept_ + bytes > ceiling) {
        std::free(blocks_.back().first);
        kept_ -= blocks_.back().second;
        blocks_.pop_back();
      }
      live_ += bytes;
      high_ = std::max(high_, live_);
    }
    void* base = std::aligned_alloc(64, bytes + kHeader);
    if (!base) {
      std::lock_guard<std::mutex> lock(m_);
      live_ -= bytes;
      return nullptr;
    }
    *static_cast<size_t*>(base) = bytes;
    return static_cast<char*>(base) + kHeader;
  }
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    for (const auto& b : blocks_) std::free(b.first);
    blocks_.clear();
    kept_ = 0;
    high_ = live_;
  }
  HostBlockStats stats() {
    std::lock_guard<std::mutex> lock(m_);
    return {kept_, live_, high_};
  }
  void give(void* data) {
    void* base = static_cast<char*>(data) - kHeader;
    const size_t bytes = *static_cast<size_t*>(base);
    std::lock_guard<std::mutex> lock(m_);
    live_ -= bytes;
    blocks_.emplace_back(base, bytes);
    kept_ += bytes;
  }

 private:
  std::mutex m_;
  std::vector<std::pair<void*, size_t>> blocks_;  // kept: freed, not returned to the system
  size_t kept_ = 0, live_ = 0, high_ = 0;         // bytes kept, in use, most ever in use
};

HostBlocks& host_blocks() {
  static HostBlocks* b = new HostBlocks;  // never destroyed: tensors may be freed during exit
  return *b;
}

void host_give(void* p) { host_blocks().give(p); }

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kKeepBlocks = false;
#else
constexpr bool kKeepBlocks = true;
#endif

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

void release_kept_host_blocks() { host_blocks().release(); }
HostBlockStats host_block_stats() { return host_blocks().stats(); }

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
    const bool keep = kKeepBlocks && rounded >= kKeepFrom;
    void* p = keep ? host_blocks().take(rounded) : std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) throw_runtime("out of host memory allocating " + std::to_string(bytes) + " bytes");
    *deleter = keep ? host_give : host_free;
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
