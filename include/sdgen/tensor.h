// Tensor: a shaped, typed view of device memory. Layout is row-major over `shape`; images are NHWC
// (channels last), token sequences are [batch, tokens, channels]. Precision travels with the tensor:
// an op's output dtype follows its input, so one model code path runs fp32 and mixed fp16.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace sdgen {

// U8 holds finished 8-bit images only (ops::image_to_u8); every other op takes F32, F16 or BF16
// (the 16-bit formats are storage: ops widen them to fp32, compute and round the result once).
enum class DType : uint8_t { F32, F16, U8, BF16 };
// F16 or BF16: a 16-bit float storage format.
inline bool is_half_dtype(DType dt) { return dt == DType::F16 || dt == DType::BF16; }
// Meta: tensors with a shape and a dtype but no bytes, on which ops only make outputs of the right
// shape and count their work (src/backend/meta_backend.cpp): how the model code itself is run dry to
// count FLOPs, parameters and live sets (src/pipeline/dry_run.h). Its data() is null.
enum class Device : uint8_t { CPU, CUDA, Meta };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 64, 64, 320]"

// Owns one allocation. Device memory is freed through the deleter of the backend that made it.
// An allocation carries kGuardBytes of a known pattern after its `bytes`, so tests can tell when a
// kernel or loop wrote past the end of its output (Tensor::guard_intact): always on the host; on a
// device only while set_device_guard_bytes(true) (a memset per tensor, which tests pay for and
// generation does not).
struct Storage {
  static constexpr size_t kGuardBytes = 64;
  static constexpr uint8_t kGuardByte = 0xA5;
  void* ptr = nullptr;
  size_t bytes = 0;  // usable bytes (the guard follows)
  Device device = Device::CPU;
  bool guarded = false;  // the guard pattern was written
  void (*deleter)(void*) = nullptr;
  ~Storage();
};
void set_device_guard_bytes(bool on);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  // Host fp32 tensor holding a copy of `values` (numel must match).
  static Tensor from_floats(const Shape& shape, const std::vector<float>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return (int)shape_.size(); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + ndim() : i]; }
  int64_t numel() const;
  size_t nbytes() const { return (size_t)numel() * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  void* data() { return static_cast<char*>(storage_->ptr) + offset_; }
  const void* data() const { return static_cast<const char*>(storage_->ptr) + offset_; }
  template <class T> T* data_as() { return static_cast<T*>(data()); }
  template <class T> const T* data_as() const { return static_cast<const T*>(data()); }
  // Host fp32 element pointer; checks device and dtype.
  float* f32();
  const float* f32() const;

  // Same storage, new shape of equal numel. One dimension may be -1.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of the outermost dimension, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  // A copy on `device` (same dtype). Returns *this when already there.
  Tensor to(Device device) const;
  // A host fp32 copy of the values, whatever the tensor's device and dtype.
  std::vector<float> to_floats() const;
  Tensor clone() const;
  // Copies src's bytes into this tensor's storage (same shape and dtype, any devices): refills a
  // buffer that a recorded graph reads, where a new tensor would have a new address.
  void copy_from(const Tensor& src);
  // Whether the guard bytes after this tensor's allocation still hold their pattern (a copy from
  // the device for CUDA tensors; meant for tests). Throws for an allocation made without guard.
  bool guard_intact() const;

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

}  // namespace sdgen
