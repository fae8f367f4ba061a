// The host memory a process can still take: the kernel's MemAvailable (free memory plus what it can
// reclaim from caches without swapping), lowered to the room left under a cgroup v2 limit when
// one applies (a Slurm job's --mem, a container's memory limit), as the figure the up-front memory
// check of sd-gen compares its estimate with (pipeline/memory_estimate.h).
#pragma once
#include <cstdint>
#include <string>

namespace sdgen {

struct HostMemory {
  uint64_t bytes = 0;
  std::string source;  // "MemAvailable", "cgroup memory.max", or "unknown" (bytes: the maximum)
};

HostMemory host_memory_available();

// The parsers, separate for the tests: MemAvailable in bytes from /proc/meminfo's text (0 when it
// is missing), and the room under a cgroup v2 limit from memory.max and memory.current (UINT64_MAX
// for "max", an unreadable file, or no limit).
uint64_t meminfo_available_bytes(const std::string& meminfo);
uint64_t cgroup_room_bytes(const std::string& memory_max, const std::string& memory_current);

}  // namespace sdgen
