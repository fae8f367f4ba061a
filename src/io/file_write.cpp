// Creating files safely: exclusively (never through a link someone planted), complete before they
// appear under their name (temp file in the same folder, fsync, rename), and never replacing a file
// where the caller asks for that.
#include "io/file_write.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sdgen/error.h"

namespace sdgen {

namespace {

// A temp name in path's folder whose length does not depend on the final name's (a final name near
// the 255-byte limit must not fail only because its temp name is longer). The pattern is the one
// clean_stale_temporaries recognises.
std::string temp_name_for(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  size_t slash = path.find_last_of('/');
  return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + ".sdgen-" +
         std::to_string((long)getpid()) + "-" + std::to_string(counter++) + ".tmp";
}

// Creates the temp file for `path` exclusively and returns its descriptor; *tmp gets its name. A
// name already taken (a stale file, or a link planted by someone who can write to the folder) is
// never opened: the next name is tried, and after many the run stops naming the folder.
int create_temp_for(const std::string& path, std::string* tmp) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    *tmp = temp_name_for(path);
    int fd = create_exclusive(*tmp);
    if (fd >= 0) return fd;
    if (errno != EEXIST && errno != ELOOP) throw_output("cannot write " + path + ": " + std::strerror(errno));
  }
  throw_output("cannot write " + path + ": 64 temporary names in its folder are taken by other files");
}

// Writes and fsyncs a new temp file; throws Error(kOutput) naming `path` (and leaves no temp file).
std::string write_temp(const std::string& path, const void* data, size_t size) {
  std::string tmp;
  const int fd = create_temp_for(path, &tmp);
  bool ok = true;
  for (size_t done = 0; ok && done < size;) {
    const ssize_t n = ::write(fd, static_cast<const char*>(data) + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += (size_t)n;
  }
  ok = ok && fsync(fd) == 0;
  const int err = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    unlink(tmp.c_str());
    throw_output("cannot write " + path + ": " + std::strerror(err ? err : EIO));
  }
  return tmp;
}

// "<pid>" of a name "<prefix><pid><suffix>" whose middle is all digits; -1 otherwise.
long pid_in(const std::string& name, const std::string& prefix, const std::string& suffix) {
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return -1;
  const std::string mid = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (mid.size() > 9 || mid.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::atol(mid.c_str());
}

// The pid in one of our temporary names: ".sdgen-<pid>-<n>.tmp" or ".sdgen-write-test-<pid>".
long temp_owner(const std::string& name) {
  long pid = pid_in(name, ".sdgen-write-test-", "");
  if (pid >= 0) return pid;
  if (name.size() < 5 || name.compare(name.size() - 4, 4, ".tmp") != 0) return -1;
  const size_t dash = name.rfind('-', name.size() - 5);
  if (dash == std::string::npos || pid_in(name.substr(dash), "-", ".tmp") < 0) return -1;
  return pid_in(name.substr(0, dash), ".sdgen-", "");
}

}  // namespace

int create_exclusive(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  while (fd < 0 && errno == EINTR);
  return fd;
}

int clean_stale_temporaries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    const long pid = temp_owner(name);
    if (pid <= 0 || pid == (long)getpid()) continue;
    if (::kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    struct stat st;
    if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (unlinkat(dirfd(d), name.c_str(), 0) == 0) ++removed;
  }
  closedir(d);
  return removed;
}

bool write_file_exclusive(const std::string& path, const void* data, size_t size) {
  const std::string tmp = write_temp(path, data, size);
  if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return true;
  int err = errno;
  if (err == EINVAL || err == ENOSYS || err == ENOTSUP) {
    // No RENAME_NOREPLACE on this file system: link() fails on an existing name just the same.
    if (link(tmp.c_str(), path.c_str()) == 0) {
      unlink(tmp.c_str());
      return true;
    }
    err = errno;
  }
  unlink(tmp.c_str());
  if (err == EEXIST) return false;
  throw_output("cannot create " + path + ": " + std::strerror(err));
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = write_temp(path, data, size);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw_output("cannot rename into " + path + ": " + std::strerror(err));
  }
}

}  // namespace sdgen
