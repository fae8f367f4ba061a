#include "core/trace.h"

#include <cstring>

#include "core/interrupt.h"

namespace sdgen::trace {

namespace {
PhaseHook g_hook = nullptr;
}

void set_phase_hook(PhaseHook hook) { g_hook = hook; }
void phase(const char* name, int step) {
  // What a stop request inside an op of this phase says the run was doing.
  const char* doing = "computing";
  if (std::strcmp(name, "weight_load") == 0) doing = "loading the model";
  if (std::strcmp(name, "text_encoder") == 0) doing = "encoding the prompt";
  if (std::strncmp(name, "unet_", 5) == 0 || std::strcmp(name, "sampling_setup") == 0) doing = "generating";
  if (std::strcmp(name, "vae_decode") == 0) doing = "decoding";
  set_interrupt_activity(doing);
  if (g_hook) g_hook(name, step);
}

}  // namespace sdgen::trace
