// safetensors reader (mmap, every header field validated before any byte is trusted) and writer.
#include "io/safetensors.h"
#include "core/json_unique.h"
#include "io/file_write.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sdgen/error.h"
#include "sdgen/half.h"

namespace sdgen {

namespace {

struct DTypeInfo {
  StDType dt;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {StDType::F32, "F32", 4}, {StDType::F16, "F16", 2},   {StDType::BF16, "BF16", 2},
    {StDType::F64, "F64", 8}, {StDType::I64, "I64", 8},   {StDType::I32, "I32", 4},
    {StDType::I16, "I16", 2}, {StDType::I8, "I8", 1},     {StDType::U8, "U8", 1},
    {StDType::BOOL, "BOOL", 1}, {StDType::U16, "U16", 2}, {StDType::U32, "U32", 4},
    {StDType::U64, "U64", 8},
};

const DTypeInfo& info(StDType dt) {
  for (const auto& d : kDTypes)
    if (d.dt == dt) return d;
  return kDTypes[0];
}

// The format's own bound on the header (huggingface/safetensors, safetensors/src/tensor.rs:
// MAX_HEADER_SIZE = 100_000_000, HeaderTooLarge); files past it load nowhere else either.
constexpr uint64_t kMaxHeaderBytes = 100000000;
// JSON values (keys, objects, arrays, numbers, strings) in a header. A tensor's entry is about 14
// (its name, dtype, shape and data_offsets with theirs), so this is some 70,000 tensors: SD v1.x
// checkpoints hold ~1,200 (~2,300 with an EMA copy), SDXL's ~2,500, LoRAs fewer. The parsed header
// costs up to ~150 bytes a value (a std::map node and the key-uniqueness set's), so this keeps it
// near 150 MB however the 100 MB of text is spent, where 4 million empty entries took 3.8 GB.
constexpr size_t kMaxHeaderValues = 1000000;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw_model("safetensors file " + path + ": " + what);
}

std::string range_str(const StTensorInfo& t) {
  return "[" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
}

void release_pages(const uint8_t* p, size_t n) {
  // Pages of a file mapping count in the resident set for as long as they stay mapped, so a
  // loaded model would otherwise hold every weight twice: its converted copy and the file's pages.
  // Dropping them only unmaps them (the mapping is read-only and private, so nothing is lost: the
  // page cache keeps the bytes, and a later read of a neighbour sharing the edge page faults it
  // back in).
  static const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t begin = (uintptr_t)p & ~(page - 1);
  const uintptr_t end = ((uintptr_t)p + n + page - 1) & ~(page - 1);
  if (n > 0) madvise((void*)begin, end - begin, MADV_DONTNEED);  // advice: failure changes nothing
}

}  // namespace

std::string printable_tensor_name(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += (char)c;
    }
  }
  return out;
}

const char* st_dtype_name(StDType dt) { return info(dt).name; }
size_t st_dtype_size(StDType dt) { return info(dt).size; }
bool st_dtype_is_float(StDType dt) {
  return dt == StDType::F32 || dt == StDType::F16 || dt == StDType::BF16;
}

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  size_t size = (size_t)st.st_size;
  if (size < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  }
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));
  f->map_ = m;
  f->map_size_ = size;
  const uint8_t* base = static_cast<const uint8_t*>(m);

  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | base[i];
  if (hlen > size - 8)
    fail(path, "header length " + std::to_string(hlen) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)");
  if (hlen > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(hlen) + " is over the " + std::to_string(kMaxHeaderBytes) +
                   " bytes the safetensors format allows");
  f->data_ = base + 8 + hlen;
  const size_t data_size = size - 8 - (size_t)hlen;

  nlohmann::json header;
  std::string duplicate;
  try {
    header = parse_json_unique_keys(base + 8, base + 8 + hlen, &duplicate, kMaxHeaderValues);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  } catch (const JsonTooManyValues& e) {
    fail(path, std::string("header holds ") + e.what() + " (some " + std::to_string(kMaxHeaderValues / 14) +
                   " tensors' worth; models hold a few thousand): refused");
  }
  release_pages(base, 8 + (size_t)hlen);  // the header's text: parsed, not needed again
  if (!duplicate.empty()) fail(path, "header names \"" + printable_tensor_name(duplicate) + "\" twice");
  if (!header.is_object()) fail(path, "header JSON is not an object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ is not an object");
      for (auto m2 = v.begin(); m2 != v.end(); ++m2) {
        if (!m2.value().is_string())
          fail(path, "__metadata__ value of '" + printable_tensor_name(m2.key()) + "' is not a string");
        f->metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + printable_tensor_name(name) + "'";
    if (!v.is_object()) fail(path, where + ": entry is not an object");
    StTensorInfo t;
    t.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(path, where + ": missing or non-string dtype");
    const std::string dts = dt->get<std::string>();
    bool known = false;
    for (const auto& d : kDTypes)
      if (dts == d.name) t.dtype = d.dt, known = true;
    if (!known) fail(path, where + ": unsupported dtype '" + dts + "' (supported: F32, F16, BF16)");
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(path, where + ": missing or non-array shape");
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) fail(path, where + ": shape entry is not a non-negative integer");
      // No model has a dimension past 2^31 - 1; a larger one (even in a tensor of 0 elements, whose
      // byte count would pass) only wraps when taken as an int64 or int.
      if (d.get<uint64_t>() > (uint64_t)INT32_MAX)
        fail(path, where + ": shape entry " + std::to_string(d.get<uint64_t>()) + " is beyond 2^31 - 1");
      t.shape.push_back((int64_t)d.get<uint64_t>());
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(path, where + ": data_offsets must be two non-negative integers");
    uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e) fail(path, where + ": data_offsets begin " + std::to_string(b) + " > end " + std::to_string(e));
    if (e > data_size)
      fail(path, where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                     "] lie outside the data section (" + std::to_string(data_size) +
                     " bytes; is the file truncated?)");
    t.begin = (size_t)b;
    t.end = (size_t)e;
    // numel * size must equal the range; guard the product against overflow.
    uint64_t bytes = st_dtype_size(t.dtype);
    bool overflow = false;
    for (int64_t d : t.shape) {
      if (d != 0 && bytes > UINT64_MAX / (uint64_t)d) overflow = true;
      bytes *= (uint64_t)d;
    }
    if (overflow || bytes != e - b)
      fail(path, where + ": shape " + shape_str(t.shape) + " of " + dts + " needs " +
                     (overflow ? std::string("too many") : std::to_string(bytes)) +
                     " bytes but data_offsets span " + std::to_string(e - b));
    f->tensors_.push_back(std::move(t));
  }

  // No two non-empty ranges may share a byte.
  std::vector<const StTensorInfo*> order;
  for (const auto& t : f->tensors_)
    if (t.end > t.begin) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const StTensorInfo* a, const StTensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      fail(path, "tensors '" + printable_tensor_name(order[i - 1]->name) + "' " + range_str(*order[i - 1]) +
                     " and '" + printable_tensor_name(order[i]->name) + "' " + range_str(*order[i]) + " overlap");

  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::adopt(const std::string& path, void* map, size_t map_size,
                                                       std::vector<StTensorInfo> tensors) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = map;
  f->map_size_ = map_size;
  f->data_ = static_cast<const uint8_t*>(map);
  f->tensors_ = std::move(tensors);
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    const StTensorInfo& t = f->tensors_[i];
    SDGEN_CHECK(t.begin <= t.end && t.end <= map_size, "SafetensorsFile::adopt: '" + t.name + "' outside the map");
    if (!f->index_.emplace(t.name, i).second) fail(path, "tensor '" + printable_tensor_name(t.name) + "' appears twice");
  }
  return f;
}

PyTorchMagic pytorch_magic(const std::string& path) {
  unsigned char magic[4] = {0, 0, 0, 0};
  size_t n = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    n = std::fread(magic, 1, 4, f);
    std::fclose(f);
  }
  if (n == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4) return PyTorchMagic::kZip;
  if (n >= 2 && magic[0] == 0x80 && magic[1] <= 5) return PyTorchMagic::kPickle;
  return PyTorchMagic::kNone;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const StTensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::to_floats(const StTensorInfo& t, float* out) const {
  const uint8_t* p = data(t);
  const size_t n = (size_t)t.numel();
  switch (t.dtype) {
    case StDType::F32:
      if (n) std::memcpy(out, p, n * 4);  // the data section need not be 4-byte aligned (nor exist: 0 elements)
      break;
    case StDType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = half_bits_to_float((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
      break;
    case StDType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_bits_to_float((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
      break;
    default:
      fail(path_, "tensor '" + printable_tensor_name(t.name) + "' has dtype " + st_dtype_name(t.dtype) +
                      "; only F32, F16 and BF16 weights are supported");
  }
  release_pages(p, t.end - t.begin);
}

void SafetensorsFile::copy_bytes(const StTensorInfo& t, void* out) const {
  std::memcpy(out, data(t), t.end - t.begin);
  release_pages(data(t), t.end - t.begin);
}

std::vector<float> SafetensorsFile::to_floats(const StTensorInfo& t) const {
  if (!st_dtype_is_float(t.dtype)) to_floats(t, nullptr);  // throws the dtype error
  std::vector<float> v((size_t)t.numel());
  to_floats(t, v.data());
  return v;
}

StWriteTensor st_tensor_from_floats(const std::string& name, StDType dtype, const Shape& shape,
                                    const std::vector<float>& values) {
  StWriteTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  SDGEN_CHECK(n == (int64_t)values.size(), "st_tensor_from_floats: value count does not match " + shape_str(shape));
  SDGEN_CHECK(st_dtype_is_float(dtype), "st_tensor_from_floats: not a float dtype");
  t.bytes.resize((size_t)n * st_dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == StDType::F32) {
      std::memcpy(&t.bytes[4 * i], &values[i], 4);
    } else {
      uint16_t h = dtype == StDType::F16 ? float_to_half_bits(values[i]) : float_to_bf16_bits(values[i]);
      t.bytes[2 * i] = (uint8_t)(h & 0xFF);
      t.bytes[2 * i + 1] = (uint8_t)(h >> 8);
    }
  }
  return t;
}

void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Keys in the order the data is laid out, after "__metadata__", as the safetensors library writes.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    SDGEN_CHECK((uint64_t)n * st_dtype_size(t.dtype) == t.bytes.size(),
                "write_safetensors: byte count of '" + t.name + "' does not match its shape");
    header[t.name] = {{"dtype", st_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned, as the spec suggests
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint8_t)((uint64_t)h.size() >> (8 * i));

  const std::string tmp = path + ".tmp" + std::to_string((long)getpid());
  {
    const int fd = create_exclusive(tmp);  // never through a file or link already at that name
    if (fd < 0) throw_output("cannot write " + tmp + ": " + std::strerror(errno));
    FILE* out = fdopen(fd, "wb");
    if (!out) {
      ::close(fd);
      std::remove(tmp.c_str());
      throw_output("cannot write " + tmp + ": " + std::strerror(errno));
    }
    bool ok = std::fwrite(len, 1, 8, out) == 8 && std::fwrite(h.data(), 1, h.size(), out) == h.size();
    for (const auto& t : tensors)  // (a tensor of 0 elements has no bytes, and no pointer to pass)
      ok = ok && (t.bytes.empty() || std::fwrite(t.bytes.data(), 1, t.bytes.size(), out) == t.bytes.size());
    ok = std::fclose(out) == 0 && ok;
    if (!ok) {
      std::remove(tmp.c_str());
      throw_output("cannot write " + tmp + " (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw_output("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
}

}  // namespace sdgen
