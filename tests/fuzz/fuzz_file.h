// The readers under fuzzing open paths (they mmap): each input goes to one per-process file.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <cstdint>
#include <string>

inline std::string fuzz_write_temp(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/sdgen_fuzz_input_" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f) {
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  return path;
}
