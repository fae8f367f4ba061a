// Loading the CUDA backend at run time: sd-gen built with CUDA does not link the CUDA libraries
// itself; its backend is the plugin libsdgen_cuda.so beside the program, opened on the first use of
// a GPU. A CPU run therefore starts where no CUDA library is installed and does not map the
// 150-220 MiB those libraries hold, and a missing library is one line naming it.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "sdgen/backend.h"
#include "sdgen/error.h"

namespace sdgen {

namespace {
void* g_plugin = nullptr;

// $SDGEN_CUDA_PLUGIN, else libsdgen_cuda.so in the folder of the running program.
std::string plugin_path() {
  if (const char* p = std::getenv("SDGEN_CUDA_PLUGIN"); p && *p) return p;
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  const std::string exe = n > 0 ? std::string(buf, (size_t)n) : std::string();
  return exe.substr(0, exe.find_last_of('/') + 1) + "libsdgen_cuda.so";
}
}  // namespace

std::unique_ptr<Backend> load_cuda_plugin() {
  const std::string path = plugin_path();
  if (!g_plugin) {
    dlerror();
    g_plugin = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!g_plugin) {
      const char* e = dlerror();
      throw_runtime(std::string("the CUDA backend cannot be loaded: ") + (e ? e : path.c_str()));
    }
  }
  using Make = Backend* (*)();
  const auto make = reinterpret_cast<Make>(dlsym(g_plugin, "sdgen_cuda_backend_new"));
  if (!make) throw_runtime("the CUDA backend " + path + " has no entry point sdgen_cuda_backend_new");
  return std::unique_ptr<Backend>(make());
}

bool cuda_plugin_loaded() { return g_plugin != nullptr; }

}  // namespace sdgen
