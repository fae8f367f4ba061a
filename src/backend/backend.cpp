#include "sdgen/backend.h"

#include <mutex>

#include "sdgen/error.h"

namespace sdgen {

namespace {
bool g_cpu_plain = false;
}

void set_cpu_plain(bool plain) { g_cpu_plain = plain; }
bool cpu_plain() { return g_cpu_plain; }

Backend& backend_for(Device device) {
  if (device == Device::CPU) {
    static std::unique_ptr<Backend> fast = make_cpu_backend(false);
    static std::unique_ptr<Backend> plain = make_cpu_backend(true);
    return g_cpu_plain ? *plain : *fast;
  }
#ifdef SDGEN_WITH_CUDA
  static std::unique_ptr<Backend> cuda = make_cuda_backend();
  return *cuda;
#else
  throw_runtime("this sd-gen was built without the CUDA backend (rebuild with -DSDGEN_CUDA=ON)");
#endif
}

}  // namespace sdgen
