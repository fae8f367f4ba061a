// safetensors files: a validating, memory-mapped reader and a small writer (tests and tools).
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// optional "__metadata__" (string -> string), then the data section the offsets index into.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sdgen/tensor.h"

namespace sdgen {

// Every dtype the safetensors spec names, so that files holding a few integer buffers (CLIP's
// position_ids is I64 in many SD checkpoints) still open; only F32/F16/BF16 convert to floats.
enum class StDType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, U16, U32, U64 };

const char* st_dtype_name(StDType dt);
size_t st_dtype_size(StDType dt);
bool st_dtype_is_float(StDType dt);  // F32, F16, BF16: what to_floats accepts

struct StTensorInfo {
  std::string name;
  StDType dtype = StDType::F32;
  Shape shape;
  size_t begin = 0;  // byte range within the data section
  size_t end = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps the file read-only and validates the header; throws Error(kModel) naming the file and
  // the offending tensor or field.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const StTensorInfo* find(const std::string& name) const;
  const std::vector<StTensorInfo>& tensors() const { return tensors_; }  // in header order
  // The raw bytes of a tensor inside the mapping (valid while this object lives).
  const uint8_t* data(const StTensorInfo& t) const { return data_ + t.begin; }
  // Values as fp32 (converted from F16/BF16); other dtypes throw Error(kModel). The tensor's pages
  // are then dropped from this process's resident set (data() stays valid: they fault back in).
  std::vector<float> to_floats(const StTensorInfo& t) const;
  void to_floats(const StTensorInfo& t, float* out) const;
  // The stored bytes as they are (little-endian, as on every host sd-gen builds for), into out;
  // the pages are dropped as by to_floats.
  void copy_bytes(const StTensorInfo& t, void* out) const;
  // A mapped file whose tensors another format's reader located (a PyTorch zip checkpoint,
  // io/torch_checkpoint.h): takes the mapping (munmapped with this object); begin/end are offsets
  // from the start of the mapping, already checked against it by that reader. Names must be unique.
  static std::unique_ptr<SafetensorsFile> adopt(const std::string& path, void* map, size_t map_size,
                                                std::vector<StTensorInfo> tensors);

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::vector<StTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A tensor name as messages quote it: a header key may hold any character JSON can escape, and a
// NUL would cut the printed message there, a newline split it; control bytes become \xNN and a
// backslash \\, so that the name shown is unambiguous.
std::string printable_tensor_name(const std::string& name);

// What a file that failed to parse as safetensors starts like: torch.save's zip (PK\3\4), a raw
// pickle (0x80, protocol <= 5, PyTorch before 1.6), or neither. Checked only after a parse failure:
// a header length such as 0x180 also starts with the byte 0x80.
enum class PyTorchMagic { kNone, kZip, kPickle };
PyTorchMagic pytorch_magic(const std::string& path);

// One tensor to write. `bytes` holds numel * st_dtype_size(dtype) little-endian bytes.
struct StWriteTensor {
  std::string name;
  StDType dtype = StDType::F32;
  Shape shape;
  std::vector<uint8_t> bytes;
};

// Builds an entry from fp32 values, converting to F16 (round to nearest even) or BF16 (likewise).
StWriteTensor st_tensor_from_floats(const std::string& name, StDType dtype, const Shape& shape,
                                    const std::vector<float>& values);

// Writes `path` atomically (a temporary name in the same folder, then rename). Tensors are laid out
// in the given order. Throws Error(kOutput) when the file cannot be written.
void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace sdgen
