// libFuzzer target: the PyTorch checkpoint reader. The first byte picks the layer: even, the
// restricted unpickler on the rest as a pickle; odd, the whole zip reader on the rest as a file.
// Errors are sdgen::Error; anything else (a crash, a sanitizer report, a hang) is a finding.
#include "fuzz_file.h"
#include "io/torch_checkpoint.h"
#include "sdgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] % 2 == 0) {
      sdgen::unpickle_state_dict("fuzz", data + 1, size - 1);
    } else {
      auto f = sdgen::open_torch_checkpoint(fuzz_write_temp(data + 1, size - 1));
      for (const auto& t : f->tensors())
        if (sdgen::st_dtype_is_float(t.dtype) && t.numel() <= (1 << 20)) f->to_floats(t);
    }
  } catch (const sdgen::Error&) {
  }
  return 0;
}
