// Host memory still available (host_memory.h).
#include "core/host_memory.h"

#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

namespace sdgen {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The cgroup v2 folder of this process: the "0::/path" line of /proc/self/cgroup.
std::string own_cgroup_dir() {
  std::istringstream lines(read_file("/proc/self/cgroup"));
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
  return "";
}

}  // namespace

uint64_t meminfo_available_bytes(const std::string& meminfo) {
  std::istringstream lines(meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream f(line.substr(13));
    uint64_t kib = 0;
    std::string unit;
    if (f >> kib >> unit && unit == "kB") return kib * 1024;
  }
  return 0;
}

uint64_t cgroup_room_bytes(const std::string& memory_max, const std::string& memory_current) {
  constexpr uint64_t kNone = std::numeric_limits<uint64_t>::max();
  char* end = nullptr;
  const unsigned long long limit = std::strtoull(memory_max.c_str(), &end, 10);
  if (end == memory_max.c_str()) return kNone;  // "max", or nothing readable
  const unsigned long long used = std::strtoull(memory_current.c_str(), nullptr, 10);
  return used < limit ? limit - used : 0;
}

HostMemory host_memory_available() {
  HostMemory m{meminfo_available_bytes(read_file("/proc/meminfo")), "MemAvailable"};
  if (m.bytes == 0) m = {std::numeric_limits<uint64_t>::max(), "unknown"};
  // The limits of this cgroup and of those above it: the tightest room counts.
  for (std::string dir = own_cgroup_dir(); dir.size() > std::string("/sys/fs/cgroup").size();
       dir = dir.substr(0, dir.rfind('/'))) {
    const uint64_t room = cgroup_room_bytes(read_file(dir + "/memory.max"), read_file(dir + "/memory.current"));
    if (room < m.bytes) m = {room, "cgroup memory.max"};
  }
  return m;
}

}  // namespace sdgen
