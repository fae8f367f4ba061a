#include "sdgen/backend.h"

#include "sdgen/error.h"

namespace sdgen {

namespace {
bool g_cpu_plain = false;
BackendFactory g_cuda_factory = nullptr;
}

void set_cuda_backend_factory(BackendFactory factory) { g_cuda_factory = factory; }
bool cuda_backend_registered() { return g_cuda_factory != nullptr; }

void set_cpu_plain(bool plain) { g_cpu_plain = plain; }
bool cpu_plain() { return g_cpu_plain; }

Backend& backend_for(Device device) {
  if (device == Device::CPU) {
    static std::unique_ptr<Backend> fast = make_cpu_backend(false);
    static std::unique_ptr<Backend> plain = make_cpu_backend(true);
    return g_cpu_plain ? *plain : *fast;
  }
  if (!g_cuda_factory)
    throw_runtime("this sd-gen was built without the CUDA backend (rebuild with -DSDGEN_CUDA=ON)");
  // Constructed on first use: it picks the device and installs the device-memory hooks.
  static std::unique_ptr<Backend> cuda = g_cuda_factory();
  return *cuda;
}

}  // namespace sdgen
