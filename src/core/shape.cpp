// The names of dtypes, devices and shapes (sdgen/tensor.h), apart from Tensor so that the file
// readers build without the backends (the fuzz targets, scripts/fuzz.sh).
#include <sstream>

#include "sdgen/tensor.h"

namespace sdgen {

size_t dtype_size(DType dt) { return dt == DType::F32 ? 4 : is_half_dtype(dt) ? 2 : 1; }
const char* dtype_name(DType dt) {
  return dt == DType::F32 ? "fp32" : dt == DType::F16 ? "fp16" : dt == DType::BF16 ? "bf16" : "u8";
}
const char* device_name(Device d) { return d == Device::CPU ? "cpu" : d == Device::CUDA ? "cuda" : "meta"; }

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

}  // namespace sdgen
