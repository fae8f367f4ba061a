#include "core/interrupt.h"

#include <csignal>
#include <string>

#include "sdgen/error.h"

namespace sdgen {

namespace {
volatile std::sig_atomic_t g_signal = 0;
const char* g_activity = "computing";
}

void set_interrupt_activity(const char* doing) { g_activity = doing ? doing : "computing"; }
const char* interrupt_activity() { return g_activity; }

void request_interrupt(int sig) {
  if (!g_signal) g_signal = sig;
}

void throw_if_interrupted(const char* doing) {
  if (const int s = g_signal)
    throw Error(ExitCode::kInterrupted, std::string("interrupted by ") + (s == SIGINT ? "SIGINT" : "SIGTERM") +
                                            " while " + doing + "; images written so far are complete");
}

}  // namespace sdgen
