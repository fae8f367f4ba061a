#include "sdgen/backend.h"

#include "core/device_memory.h"
#include "core/host_memory.h"
#include "sdgen/error.h"

namespace sdgen {

namespace {
bool g_cpu_plain = false;
BackendFactory g_cuda_factory = nullptr;
int g_cuda_ordinal = 0;
bool g_cuda_created = false;
}

Backend::Available Backend::available_memory() {
  const HostMemory m = host_memory_available();
  return {m.bytes, m.source};
}

namespace {
class FinishedDownload final : public Download {
 public:
  explicit FinishedDownload(Tensor t) : t_(std::move(t)) {}
  Tensor wait() override { return t_; }

 private:
  Tensor t_;
};
}  // namespace

std::unique_ptr<Download> Backend::download_async(const Tensor& x) {
  // A copy, not a view, on the host too: the caller queues more work that may overwrite x.
  return std::make_unique<FinishedDownload>(x.device() == Device::CPU ? x.clone() : x.to(Device::CPU));
}

void set_cuda_device_ordinal(int ordinal) {
  if (g_cuda_created && ordinal != g_cuda_ordinal)
    throw_usage("one process drives one GPU: the CUDA backend already runs on cuda:" +
                std::to_string(g_cuda_ordinal) + ", not cuda:" + std::to_string(ordinal));
  g_cuda_ordinal = ordinal;
}
int cuda_device_ordinal() { return g_cuda_ordinal; }

void set_cuda_backend_factory(BackendFactory factory) {
  g_cuda_factory = factory;
  set_cuda_memory_starter([] { backend_for(Device::CUDA); });
}
bool cuda_backend_registered() { return g_cuda_factory != nullptr; }

void set_cpu_plain(bool plain) { g_cpu_plain = plain; }

Backend& backend_for(Device device) {
  if (device == Device::Meta) {
    static std::unique_ptr<Backend> meta = make_meta_backend();
    return *meta;
  }
  if (device == Device::CPU) {
    static std::unique_ptr<Backend> fast = make_cpu_backend(false);
    static std::unique_ptr<Backend> plain = make_cpu_backend(true);
    return g_cpu_plain ? *plain : *fast;
  }
  if (!g_cuda_factory)
    throw_runtime("this sd-gen was built without the CUDA backend (rebuild with -DSDGEN_CUDA=ON)");
  // Constructed on first use: it picks the device and installs the device-memory hooks.
  static std::unique_ptr<Backend> cuda = g_cuda_factory();
  g_cuda_created = true;
  return *cuda;
}

}  // namespace sdgen
