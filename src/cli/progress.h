// Progress on stderr: a redrawn bar when stderr is a terminal
//   12/25 [=========>          ] 3.20 it/s, ETA 0:04
// (steps per second and the time left at that rate, from the first step on) and plain one-line-per-stage logs otherwise (so batch logs stay readable). Silent with --quiet.
#pragma once
#include <chrono>
#include <string>

namespace sdgen::cli {

// The line's text after the bar: "3.20 it/s, ETA 0:04" — the rate since the first step and the
// steps left at it, as m:ss (h:mm:ss from an hour); "ETA --" before a step has finished, and the
// elapsed time instead ("done in 0:08") when done == total.
std::string rate_and_eta(int done, int total, double seconds);

class Progress {
 public:
  Progress(bool quiet);
  // A stage line ("loading model ...", "text encoder: 0.21 s").
  void log(const std::string& line);
  // Sampling progress: step `done` of `total`.
  void step(int done, int total);

 private:
  bool quiet_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  int last_total_ = 0;
};

}  // namespace sdgen::cli
