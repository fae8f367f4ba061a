// libFuzzer target: the safetensors reader (header JSON, dtypes, shapes, offsets, overlap) on any
// bytes, then every float tensor converted. Errors are sdgen::Error; anything else is a finding.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "fuzz_file.h"
#include "io/safetensors.h"
#include "sdgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz_write_temp(data, size);
  try {
    auto f = sdgen::SafetensorsFile::open(path);
    for (const auto& t : f->tensors())
      if (sdgen::st_dtype_is_float(t.dtype) && t.numel() <= (1 << 20)) f->to_floats(t);
  } catch (const sdgen::Error&) {
  }
  return 0;
}
