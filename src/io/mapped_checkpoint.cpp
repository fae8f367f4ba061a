// MappedCheckpoint (mapped_checkpoint.h).
#include "io/mapped_checkpoint.h"

#include <filesystem>

#include "sdgen/error.h"

namespace sdgen {

namespace {
Shape strip_trailing_ones(Shape s) {
  while (s.size() > 1 && s.back() == 1) s.pop_back();
  return s;
}
}  // namespace

std::string MappedCheckpoint::name() const {
  std::string p = path_;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return std::filesystem::path(p).filename().string();
}

std::optional<Shape> MappedCheckpoint::stored_shape(const std::string& n) const {
  auto it = entries_.find(n);
  return it == entries_.end() ? std::nullopt : std::optional<Shape>(it->second.info->shape);
}

std::vector<std::string> MappedCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

const MappedCheckpoint::Entry& MappedCheckpoint::entry(const std::string& n, const Shape& expected) const {
  auto it = entries_.find(n);
  if (it == entries_.end()) throw_model(option_ + " " + path_ + ": tensor '" + n + "' not found");
  const StTensorInfo& t = *it->second.info;
  if (strip_trailing_ones(t.shape) != strip_trailing_ones(expected))
    throw_model(option_ + " " + path_ + ": tensor '" + printable_tensor_name(t.name) + "' has shape " +
                shape_str(t.shape) + ", expected " + shape_str(expected) + " (made for another model?)");
  return it->second;
}

Tensor MappedCheckpoint::get(const std::string& n, const Shape& expected) const {
  const Entry& e = entry(n, expected);
  Tensor out = Tensor::empty(expected);
  e.file->to_floats(*e.info, out.f32());
  return out;
}

Tensor MappedCheckpoint::get_stored(const std::string& n, const Shape& expected, DType dtype) const {
  const Entry& e = entry(n, expected);
  const StDType want = dtype == DType::F16 ? StDType::F16 : dtype == DType::BF16 ? StDType::BF16 : StDType::F32;
  if (e.info->dtype != want || e.info->shape != expected) return get(n, expected);
  Tensor out = Tensor::empty(expected, dtype);
  e.file->copy_bytes(*e.info, out.data());
  return out;
}

}  // namespace sdgen
