// sd-gen's entry: `sd-gen bench ...` (cli/bench.h) or a generation run (cli/run.h), with the
// process-wide parts: stop signals, the folders to remove when a run fails, and the exit code of
// an error (one line on stderr; codes in the README).
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/blas_kernels.h"
#include "cli/bench.h"
#include "cli/options.h"
#include "cli/run.h"
#include "core/interrupt.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

using namespace sdgen;
using namespace sdgen::cli;

namespace {

// Folders this run created; removed again (when still empty) if the run fails.
std::vector<std::string> g_created_dirs;

// Ctrl-C / SIGTERM: finish nothing half-way. The request (core/interrupt.h) is polled between
// sampler steps, weight tensors, VAE blocks and images; images already written are complete files.
// A second signal ends the process at once with 130 (as a stop does), after removing the folders
// this run created if they are still empty; only async-signal-safe calls (rmdir, _exit) on fixed
// buffers filled before any work.
constexpr int kMaxNotedDirs = 64;
char g_noted_dirs[kMaxNotedDirs][4096];
volatile sig_atomic_t g_noted_count = 0;
void note_created_dir(const std::string& d) {
  const int n = g_noted_count;
  if (n >= kMaxNotedDirs || d.size() >= sizeof g_noted_dirs[0]) return;
  std::memcpy(g_noted_dirs[n], d.c_str(), d.size() + 1);
  g_noted_count = n + 1;
}
extern "C" void on_signal(int sig) {
  static volatile sig_atomic_t seen = 0;
  if (seen) {
    for (int i = g_noted_count - 1; i >= 0; --i) rmdir(g_noted_dirs[i]);  // fails unless empty
    _exit((int)ExitCode::kInterrupted);
  }
  seen = 1;
  request_interrupt(sig);
}
void check_interrupted() { throw_if_interrupted("generating"); }

int run(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "bench") return run_bench(argc - 1, argv + 1, check_interrupted);
  RunHooks hooks;
  hooks.check_interrupted = check_interrupted;
  hooks.dir_created = [](const std::string& d) {
    g_created_dirs.push_back(d);
    note_created_dir(d);
  };
  return run_generation(argc, argv, hooks);
}

// The GEMM kernels: when OpenBLAS picked a set narrower than this CPU runs (a CPU newer than the
// library knows), start again with the right one named, before anything else happens; the library
// reads OPENBLAS_CORETYPE only as it loads (backend/cpu/blas_kernels.h).
void check_blas_kernels(char** argv) {
  const BlasKernelCheck k = blas_kernel_check(blas_core_in_use(), std::getenv("OPENBLAS_CORETYPE"), cpu_features());
  if (!k.reexec_with.empty()) {
    setenv("OPENBLAS_CORETYPE", k.reexec_with.c_str(), 1);
    execv("/proc/self/exe", argv);
    std::fprintf(stderr, "sd-gen: warning: OpenBLAS runs its %s kernels; starting again with OPENBLAS_CORETYPE=%s failed: %s\n",
                 blas_core_in_use().c_str(), k.reexec_with.c_str(), std::strerror(errno));
    return;
  }
  if (!k.warning.empty()) std::fprintf(stderr, "sd-gen: warning: %s\n", k.warning.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  check_blas_kernels(argv);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
#ifdef SDGEN_WITH_CUDA
  set_cuda_backend_factory(&load_cuda_plugin);
#endif
  int code = 0;
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "sd-gen: error: %s\n", e.what());
    code = (int)e.code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "sd-gen: error: out of memory\n");
    code = (int)ExitCode::kRuntime;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sd-gen: error: internal: %s\n", e.what());
    code = (int)ExitCode::kInternal;
  }
  remove_created_dirs(g_created_dirs);
  return code;
}
