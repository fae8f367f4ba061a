// A stop request (SIGINT/SIGTERM) polled where the work is long: between sampler steps, between
// weight tensors while a model loads, between the VAE decoder's blocks. The CLI's signal handler
// sets it; everything else only reads it. Library users that never set it never stop.
#pragma once

namespace sdgen {

// Async-signal-safe: records the signal (the first one wins).
void request_interrupt(int sig);
// Error(kInterrupted) "interrupted by SIGINT|SIGTERM while <doing>" when a stop was asked for.
void throw_if_interrupted(const char* doing);
// What the work in progress is called, for stops found where the work is not known (between ops):
// set with each pipeline phase (core/trace.h); a string literal. "computing" by default.
void set_interrupt_activity(const char* doing);
const char* interrupt_activity();

}  // namespace sdgen
