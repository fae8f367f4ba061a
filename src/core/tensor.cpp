#include "sdgen/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "sdgen/error.h"
#include "sdgen/half.h"
#include "core/device_memory.h"

namespace sdgen {

namespace {
bool g_device_guards = false;
}  // namespace

Storage::~Storage() {
  if (ptr && deleter) deleter(ptr);
  if (device == Device::Meta) meta_tally().live -= bytes;
}

static int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

int64_t Tensor::numel() const { return shape_numel(shape_); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) SDGEN_CHECK(d >= 0, "negative dimension in " + shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>();
  size_t bytes = (size_t)shape_numel(shape) * dtype_size(dtype);
  t.storage_->bytes = bytes;
  t.storage_->device = device;
  // A meta tensor's tally counts its own bytes: it has no guard.
  t.storage_->ptr = device_alloc(device, bytes + (device == Device::Meta ? 0 : Storage::kGuardBytes),
                                 &t.storage_->deleter);
  if (device == Device::CPU || (device == Device::CUDA && g_device_guards)) {
    device_memset(device, static_cast<char*>(t.storage_->ptr) + bytes, Storage::kGuardByte, Storage::kGuardBytes);
    t.storage_->guarded = true;
  }
  return t;
}

void set_device_guard_bytes(bool on) { g_device_guards = on; }

bool Tensor::guard_intact() const {
  if (!storage_) return true;
  SDGEN_CHECK(storage_->guarded, "guard_intact: this " + std::string(device_name(device_)) +
                                     " allocation has no guard bytes (set_device_guard_bytes(true) before making it)");
  std::vector<uint8_t> g(Storage::kGuardBytes);
  device_copy(g.data(), Device::CPU, static_cast<const char*>(storage_->ptr) + storage_->bytes,
              device_, g.size());
  for (uint8_t b : g)
    if (b != Storage::kGuardByte) return false;
  return true;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  device_memset(device, t.data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::from_floats(const Shape& shape, const std::vector<float>& values) {
  SDGEN_CHECK((int64_t)values.size() == shape_numel(shape),
              "from_floats: " + std::to_string(values.size()) + " values for " + shape_str(shape));
  Tensor t = empty(shape);
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * 4);
  return t;
}

float* Tensor::f32() {
  SDGEN_CHECK(device_ == Device::CPU && dtype_ == DType::F32, "f32(): not a host fp32 tensor");
  return data_as<float>();
}
const float* Tensor::f32() const {
  SDGEN_CHECK(device_ == Device::CPU && dtype_ == DType::F32, "f32(): not a host fp32 tensor");
  return data_as<float>();
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      SDGEN_CHECK(infer < 0, "reshape: two -1 dims");
      infer = (int)i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[infer] = known ? numel() / known : 0;
  SDGEN_CHECK(shape_numel(s) == numel(), "reshape " + shape_str(shape_) + " -> " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  SDGEN_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
              "slice0 out of range for " + shape_str(shape_));
  Tensor t = *this;
  int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  t.offset_ += (size_t)(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  Tensor t = empty(shape_, dtype_, device);
  device_copy(t.data(), device, data(), device_, nbytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  SDGEN_CHECK(src.shape() == shape_ && src.dtype() == dtype_,
              "copy_from: " + shape_str(src.shape()) + " " + dtype_name(src.dtype()) + " into " +
                  shape_str(shape_) + " " + dtype_name(dtype_));
  device_copy(data(), device_, src.data(), src.device(), nbytes());
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  device_copy(t.data(), device_, data(), device_, nbytes());
  return t;
}

std::vector<float> Tensor::to_floats() const {
  Tensor h = to(Device::CPU);
  std::vector<float> out((size_t)numel());
  if (dtype_ == DType::F32) {
    if (!out.empty()) std::memcpy(out.data(), h.data(), out.size() * 4);
  } else if (dtype_ == DType::U8) {
    const uint8_t* p = h.data_as<uint8_t>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else if (dtype_ == DType::BF16) {
    const uint16_t* p = h.data_as<uint16_t>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_bits_to_float(p[i]);
  } else {
    const uint16_t* p = h.data_as<uint16_t>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = half_bits_to_float(p[i]);
  }
  return out;
}

}  // namespace sdgen
