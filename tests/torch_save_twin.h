// A state dict written the way torch.save writes one (its zip format, PyTorch >= 1.6), for tests
// that need a .pth/.ckpt of data already in the tree without committing a second copy of it: a
// stored (uncompressed) zip of archive/data.pkl, archive/data/<i> (one storage per tensor, little
// endian) and archive/version; the pickle is protocol 2 of an OrderedDict whose values are
// torch._utils._rebuild_tensor_v2(persistent storage id, offset 0, size, contiguous stride, False,
// OrderedDict()). io/torch_checkpoint.cpp's reader is held to files torch itself wrote
// (tests/data/ckpt, tests/data/tiny_sd/tiny_sd_fp16.ckpt); this twin only saves the tree a copy.
// torch.load(path, weights_only=True) reads what it writes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "sdgen/half.h"

namespace sdgen::torch_save_twin {

inline void put_le(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back((char)((v >> (8 * i)) & 0xff));
}

inline std::string unicode(const std::string& s) {  // BINUNICODE
  std::string o = "X";
  put_le(o, s.size(), 4);
  return o + s;
}

inline std::string int32(int64_t v) {  // BININT
  std::string o = "J";
  put_le(o, (uint64_t)(uint32_t)(int32_t)v, 4);
  return o;
}

inline const char* storage_class(StDType t) {
  switch (t) {
    case StDType::F32: return "FloatStorage";
    case StDType::F16: return "HalfStorage";
    case StDType::BF16: return "BFloat16Storage";
    default: throw std::runtime_error("torch_save_twin: a dtype the twin does not write");
  }
}

// A stored zip of the named members, in order.
inline std::string zip(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string z, dir;
  for (const auto& [name, data] : members) {
    const size_t local = z.size();
    put_le(z, 0x04034b50, 4), put_le(z, 20, 2), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 4);
    put_le(z, 0, 4), put_le(z, data.size(), 4), put_le(z, data.size(), 4), put_le(z, name.size(), 2);
    put_le(z, 0, 2);
    z += name + data;
    put_le(dir, 0x02014b50, 4), put_le(dir, 20, 2), put_le(dir, 20, 2), put_le(dir, 0, 2), put_le(dir, 0, 2);
    put_le(dir, 0, 4), put_le(dir, 0, 4), put_le(dir, data.size(), 4), put_le(dir, data.size(), 4);
    put_le(dir, name.size(), 2), put_le(dir, 0, 2), put_le(dir, 0, 2), put_le(dir, 0, 2), put_le(dir, 0, 2);
    put_le(dir, 0, 4), put_le(dir, local, 4);
    dir += name;
  }
  const size_t cd = z.size();
  z += dir;
  put_le(z, 0x06054b50, 4), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, members.size(), 2);
  put_le(z, members.size(), 2), put_le(z, dir.size(), 4), put_le(z, cd, 4), put_le(z, 0, 2);
  return z;
}

// The tensors (contiguous, in the dtype and bytes they have) as torch.save(OrderedDict) would.
inline void write(const std::string& path, const std::vector<StWriteTensor>& tensors) {
  std::string pkl = "\x80\x02" "ccollections\nOrderedDict\n)R(";
  std::vector<std::pair<std::string, std::string>> members;
  members.push_back({"archive/data.pkl", ""});
  for (size_t i = 0; i < tensors.size(); ++i) {
    const StWriteTensor& t = tensors[i];
    const int64_t el = (int64_t)st_dtype_size(t.dtype);
    pkl += unicode(t.name) + "ctorch._utils\n_rebuild_tensor_v2\n((" + unicode("storage") + "ctorch\n" +
           storage_class(t.dtype) + "\n" + unicode(std::to_string(i)) + unicode("cpu") +
           int32((int64_t)t.bytes.size() / el) + "tQ" + int32(0) + "(";
    for (int64_t d : t.shape) pkl += int32(d);
    pkl += "t(";
    std::vector<int64_t> stride(t.shape.size(), 1);
    for (size_t d = t.shape.size(); d-- > 1;) stride[d - 1] = stride[d] * t.shape[d];
    for (int64_t s : stride) pkl += int32(s);
    pkl += "t\x89" "ccollections\nOrderedDict\n)RtR";
    members.push_back({"archive/data/" + std::to_string(i), std::string(t.bytes.begin(), t.bytes.end())});
  }
  pkl += "u.";
  members[0].second = pkl;
  members.push_back({"archive/version", "3\n"});
  std::ofstream f(path, std::ios::binary);
  f << zip(members);
  if (!f) throw std::runtime_error("torch_save_twin: cannot write " + path);
}

// The .safetensors single file `src` (16-bit, with its sidecar `src`.json) in the other forms
// checkpoints come in, written under `dir` with a copy of the sidecar each: {.ckpt with the same
// tensors, .safetensors with every tensor rounded to bf16}.
inline std::pair<std::string, std::string> other_forms(const std::string& src, const std::filesystem::path& dir) {
  const auto file = SafetensorsFile::open(src);
  std::vector<StWriteTensor> same, bf16;
  for (const StTensorInfo& t : file->tensors()) {
    StWriteTensor w{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.end - t.begin)};
    file->copy_bytes(t, w.bytes.data());
    same.push_back(std::move(w));
    bf16.push_back(st_tensor_from_floats(t.name, StDType::BF16, t.shape, file->to_floats(t)));
  }
  const std::string stem = std::filesystem::path(src).stem().string();
  const std::string ckpt = (dir / (stem + ".ckpt")).string(), b16 = (dir / (stem + "_bf16.safetensors")).string();
  write(ckpt, same);
  write_safetensors(b16, bf16);
  for (const std::string& f : {ckpt, b16}) std::filesystem::copy_file(src + ".json", f + ".json");
  return {ckpt, b16};
}

// other_forms' bf16 file against its source, through the checkpoint reader: every canonical tensor
// of `b16` must read as `fp16`'s rounded to bf16. Returns how many were compared; throws naming the
// first tensor that differs.
inline int expect_bf16_of(const std::string& fp16, const std::string& b16) {
  const auto a = Checkpoint::open(fp16), b = Checkpoint::open(b16);
  int compared = 0;
  for (const std::string& n : a->names()) {
    const Shape s = *a->stored_shape(n);
    std::vector<float> want = a->get(n, s).to_floats();
    for (float& v : want) v = round_to_bf16(v);
    if (b->get(n, s).to_floats() != want) throw std::runtime_error(n + ": not the fp16 tensor rounded to bf16");
    ++compared;
  }
  return compared;
}

}  // namespace sdgen::torch_save_twin
