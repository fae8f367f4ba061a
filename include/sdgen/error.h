// Errors and the process exit codes they map to. Every failure the user can cause is an sdgen::Error
// carrying one of these codes; the CLI prints its message as one line and exits with the code.
#pragma once
#include <stdexcept>
#include <string>

namespace sdgen {

// Stable, documented in the README. Scripts may rely on these numbers.
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,   // a bug: an invariant of ours did not hold
  kUsage = 2,      // bad command line, prompt file or option value
  kModel = 3,      // model/weights missing, unreadable, corrupt or of the wrong shape
  kOutput = 4,     // output directory or file cannot be written
  kRuntime = 5,    // runtime/device failure (no CUDA device, out of memory, kernel error)
  kInterrupted = 130,
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

[[noreturn]] inline void throw_usage(const std::string& m) { throw Error(ExitCode::kUsage, m); }
[[noreturn]] inline void throw_model(const std::string& m) { throw Error(ExitCode::kModel, m); }
[[noreturn]] inline void throw_output(const std::string& m) { throw Error(ExitCode::kOutput, m); }
[[noreturn]] inline void throw_runtime(const std::string& m) { throw Error(ExitCode::kRuntime, m); }
[[noreturn]] void throw_internal(const char* cond, const char* file, int line, const std::string& m);

}  // namespace sdgen

// Precondition checks on our own invariants (shapes, dtypes at op entry). Always on: they are cheap
// next to the ops they guard, and a wrong shape must never become a silent wrong image.
#define SDGEN_CHECK(cond, msg)                                                   \
  do {                                                                           \
    if (!(cond)) ::sdgen::throw_internal(#cond, __FILE__, __LINE__, (msg));      \
  } while (0)
