#include "cli/manifest.h"

#include "cli/settings.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/sha256.h"
#include "io/checkpoint.h"
#include "sdgen/error.h"

namespace fs = std::filesystem;

namespace sdgen::cli {

std::string model_sha256(const std::string& path) {
  if (is_random_model(path)) return "none (random weights)";
  std::error_code ec;
  auto hash = [](const std::string& file) {
    try {
      return sha256_file(file);
    } catch (const Error& e) {
      if (e.code() == ExitCode::kInterrupted) throw;  // a stop, not a bad model
      throw_model(std::string("hashing the model for the manifest: ") + e.what());
    }
  };
  if (!fs::is_directory(path, ec)) return hash(path);
  std::vector<std::string> files;  // relative paths
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (fs::is_regular_file(it->path(), ec)) files.push_back(fs::relative(it->path(), path, ec).string());
  if (ec) throw_model("hashing the model for the manifest: cannot list " + path + ": " + ec.message());
  std::sort(files.begin(), files.end());  // std::string order: bytes, as LC_ALL=C sort
  std::string listing;
  for (const std::string& f : files) listing += hash(path + "/" + f) + "  " + f + "\n";
  return sha256_hex(listing);
}

int job_line(const Job& job) {
  const size_t colon = job.origin.rfind(':');
  if (colon == std::string::npos || job.origin == "--prompt") return 0;
  try {
    return std::stoi(job.origin.substr(colon + 1));
  } catch (const std::exception&) {
    return 0;
  }
}

nlohmann::json job_identity(const Job& j, uint64_t base_seed, const std::string& model_sha) {
  RecordContext ctx;
  ctx.base_seed = base_seed;
  nlohmann::json id = settings_identity(j, ctx);
  id["line"] = job_line(j);
  id["model_sha256"] = model_sha;
  return id;
}

namespace {
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = (unsigned char)s[i];
    const int n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (int k = 1; k < n; ++k)
      if (((unsigned char)s[i + k] >> 6) != 0x2) return false;
    i += (size_t)n;
  }
  return true;
}

std::string to_hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) h += {d[c >> 4], d[c & 15]};
  return h;
}

// The bytes of a hex string; empty when it is not one (an edited or damaged record).
std::string from_hex(const std::string& h) {
  auto v = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string s;
  if (h.size() % 2) return s;
  for (size_t i = 0; i < h.size(); i += 2) {
    const int a = v(h[i]), b = v(h[i + 1]);
    if (a < 0 || b < 0) return std::string();
    s += (char)(a * 16 + b);
  }
  return s;
}

// A text field stored losslessly: the bytes from "<key>_hex" where present, else the string.
std::string lossless(const nlohmann::json& r, const std::string& key) {
  if (r.contains(key + "_hex") && r[key + "_hex"].is_string()) return from_hex(r[key + "_hex"].get<std::string>());
  return r.contains(key) && r[key].is_string() ? r[key].get<std::string>() : std::string();
}

// The folder as records name it: absolute, normalized, without a trailing slash.
std::string folder_key(const std::string& dir) {
  std::error_code ec;
  std::string f = fs::weakly_canonical(fs::absolute(dir, ec), ec).lexically_normal().string();
  while (f.size() > 1 && f.back() == '/') f.pop_back();
  return f;
}
}  // namespace

void set_record_paths(nlohmann::json& record, const std::string& path, const std::string& out_dir) {
  const std::string folder = folder_key(out_dir);
  record["path"] = path;
  record["out_dir"] = folder;
  if (!valid_utf8(path)) record["path_hex"] = to_hex(path);
  if (!valid_utf8(folder)) record["out_dir_hex"] = to_hex(folder);
}

namespace {
std::string key_of(const nlohmann::json& identity, int index) {
  // nlohmann's objects keep their keys sorted, so dump() is one text per identity.
  return identity.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "#" + std::to_string(index);
}
}  // namespace

namespace {
// The manifest's descriptor, opened before anything is read: never through a symbolic link (sd-gen
// writes through none), and only a regular file (a device or a pipe would be read without end).
int open_manifest(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 && errno == ELOOP)
    throw_output("--manifest " + path + ": is a symbolic link; sd-gen writes through none, name the file itself");
  if (fd < 0) throw_output("--manifest " + path + ": cannot open for appending: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_output("--manifest " + path + ": not a regular file");
  }
  // One writer: two processes resuming from one manifest would both make the missing images and
  // record them twice. The lock goes with the descriptor (closed at exit, also on a crash).
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw_output("--manifest " + path + ": another sd-gen is writing it (one process per manifest; give each "
                   "its own, e.g. part-$SLURM_ARRAY_TASK_ID.jsonl)");
    throw_output("--manifest " + path + ": cannot lock: " + std::strerror(err));
  }
  return fd;
}

std::string read_all(int fd, const std::string& path) {
  std::string text;
  char buf[1 << 16];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_output("--manifest " + path + ": cannot read: " + std::strerror(errno));
    if (n == 0) return text;
    text.append(buf, (size_t)n);
    at += n;
  }
}
}  // namespace

Manifest::Manifest(const std::string& path, const std::function<void(const std::string&)>& warn) : path_(path) {
  fd_ = open_manifest(path);
  std::string text;
  try {
    text = read_all(fd_, path);
  } catch (...) {
    ::close(fd_);
    throw;
  }
  const bool ends_in_newline = text.empty() || text.back() == '\n';
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      const nlohmann::json r = nlohmann::json::parse(line);
      if (r.is_object() && r.contains("grid")) continue;  // a --grid sheet's record, no image of a job
      records_.emplace(key_of(r.at("job"), r.at("index").get<int>()),
                       Record{lossless(r, "path"), r.at("png_sha256").get<std::string>(), lossless(r, "out_dir")});
      if (r.contains("shard") && r["shard"].is_string()) shards_.insert(r["shard"].get<std::string>());
    } catch (const std::exception&) {
      if (warn) warn("--manifest " + path + ":" + std::to_string(lineno) + ": not a record (cut short?); ignored");
    }
  }
  if (!ends_in_newline && ::write(fd_, "\n", 1) != 1) {  // a line cut short must not swallow the next record
    const int err = errno;
    ::close(fd_);
    throw_output("--manifest " + path + ": cannot write: " + std::strerror(err));
  }
}

Manifest::~Manifest() {
  if (fd_ >= 0) ::close(fd_);
}

bool Manifest::done(const nlohmann::json& identity, int index, const std::string& out_dir) const {
  auto range = records_.equal_range(key_of(identity, index));
  const std::string folder = folder_key(out_dir);
  std::string elsewhere;
  for (auto it = range.first; it != range.second; ++it) {
    const Record& rec = it->second;
    if (!rec.out_dir.empty() && rec.out_dir != folder) {
      elsewhere = rec.out_dir;
      continue;
    }
    // Only a file of this folder counts, whatever the record says (an edited manifest could
    // name any file whose bytes match).
    const std::string& file = rec.path;
    std::error_code ec;
    if (folder_key(fs::path(file).parent_path().string()) != folder) continue;
    if (fs::is_symlink(fs::symlink_status(file, ec)) || !fs::is_regular_file(file, ec)) continue;
    try {
      if (sha256_file(file) == rec.png_sha256) return true;
    } catch (const Error&) {
    }
  }
  if (!elsewhere.empty())
    throw_usage("--manifest " + path_ + " records this image in " + elsewhere + ", this run writes to " + folder +
                ": resume with the --out it was made with, or start a new manifest");
  return false;
}

void Manifest::append(const nlohmann::json& record) {
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_output("--manifest " + path_ + ": cannot write: " + std::strerror(errno));
    done += (size_t)n;
  }
  if (::fsync(fd_) != 0) throw_output("--manifest " + path_ + ": cannot sync: " + std::strerror(errno));
}

}  // namespace sdgen::cli
