// A Checkpoint over the tensors of one or more weights files, each served under a canonical name
// the caller chooses (the add-on model files: ControlNet, and the like). Shapes must match what the
// model asks for up to trailing 1-dims; a mismatch or a missing tensor is one line naming the option,
// the file, the tensor and both shapes.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace sdgen {

class MappedCheckpoint : public Checkpoint {
 public:
  // option: the command-line option that named the file ("--control"), for messages.
  MappedCheckpoint(std::string option, std::string path, ModelConfig config)
      : option_(std::move(option)), path_(std::move(path)), config_(std::move(config)) {}
  const SafetensorsFile* keep(std::unique_ptr<SafetensorsFile> f) {
    files_.push_back(std::move(f));
    return files_.back().get();
  }
  void add(const std::string& canonical, const StTensorInfo* t, const SafetensorsFile* f) {
    entries_[canonical] = {t, f};
  }

  const ModelConfig& config() const override { return config_; }
  std::string name() const override;
  bool has(const std::string& n) const override { return entries_.count(n) != 0; }
  std::optional<Shape> stored_shape(const std::string& n) const override;
  std::vector<std::string> names() const override;
  Tensor get(const std::string& n, const Shape& expected) const override;
  Tensor get_stored(const std::string& n, const Shape& expected, DType dtype) const override;

 private:
  struct Entry {
    const StTensorInfo* info;
    const SafetensorsFile* file;
  };
  const Entry& entry(const std::string& n, const Shape& expected) const;
  std::string option_, path_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
};

}  // namespace sdgen
