#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace sdgen::cli {

Progress::Progress(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0) {}

void Progress::log(const std::string& line) {
  if (quiet_) return;
  std::fprintf(stderr, "%s\n", line.c_str());
}

void Progress::step(int done, int total) {
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  if (done == 0 || total != last_total_) {
    start_ = now;
    last_total_ = total;
  }
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = done > 0 && secs > 0 ? done / secs : 0.0;
  if (tty_) {
    const int width = 30;
    int filled = total ? done * width / total : width;
    std::string bar(filled, '=');
    if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
    std::fprintf(stderr, "\r%d/%d [%s] %.2f it/s", done, total, bar.c_str(), rate);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  } else if (done == total) {
    std::fprintf(stderr, "sampling: %d steps, %.2f it/s\n", total, rate);
  }
}

}  // namespace sdgen::cli
