#include "core/trace.h"

namespace sdgen::trace {

namespace {
PhaseHook g_hook = nullptr;
}

void set_phase_hook(PhaseHook hook) { g_hook = hook; }
void phase(const char* name, int step) {
  if (g_hook) g_hook(name, step);
}

}  // namespace sdgen::trace
