// Progress on stderr: a redrawn bar when stderr is a terminal
//   12/25 [=========>          ] 3.2 it/s
// and plain one-line-per-stage logs otherwise (so batch logs stay readable). Silent with --quiet.
#pragma once
#include <chrono>
#include <string>

namespace sdgen::cli {

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
