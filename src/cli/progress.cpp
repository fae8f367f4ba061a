#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace sdgen::cli {

namespace {
std::string clock_text(double seconds) {
  const long s = seconds < 0 ? 0 : (long)(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}
}  // namespace

std::string rate_and_eta(int done, int total, double seconds) {
  const double rate = done > 0 && seconds > 0 ? done / seconds : 0.0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f it/s, ", rate);
  if (done >= total) return buf + ("done in " + clock_text(seconds));
  if (rate <= 0) return buf + std::string("ETA --");
  return buf + ("ETA " + clock_text((total - done) / rate));
}

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
    // Cleared to the line's end: the new text may be shorter than the last.
    std::fprintf(stderr, "\r%d/%d [%s] %s\033[K", done, total, bar.c_str(), rate_and_eta(done, total, secs).c_str());
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  } else if (done == total) {
    std::fprintf(stderr, "sampling: %d steps, %.2f it/s\n", total, rate);
  }
}

}  // namespace sdgen::cli
