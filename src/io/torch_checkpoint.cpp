// PyTorch zip checkpoints without code execution (torch_checkpoint.h). Two readers: the zip's
// central directory (with its zip64 forms: SD checkpoints are 2–8 GB), and the restricted
// pickle machine. Every count, length and offset is checked against the bytes that hold it.
#include "io/torch_checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "sdgen/error.h"

namespace sdgen {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& why) { throw_model(what + ": " + why); }

// ---- the pickle machine ----

struct Obj;
using Ref = std::shared_ptr<Obj>;
struct Obj {
  enum Kind { kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kGlobal, kStorage, kTensor, kOpaque };
  Kind kind = kNone;
  int64_t i = 0;
  std::string s;  // kStr; kGlobal: "module.name"; kStorage: its key
  std::vector<Ref> items;                  // kTuple, kList
  std::vector<std::pair<Ref, Ref>> dict;   // kDict, in insertion order
  TorchTensorRef tensor;                   // kTensor; kStorage: dtype, storage_key, storage_numel
};

// The storage classes a tensor may name, and their element types.
const std::map<std::string, StDType>& storage_types() {
  static const std::map<std::string, StDType> m = {
      {"torch.FloatStorage", StDType::F32}, {"torch.HalfStorage", StDType::F16},
      {"torch.BFloat16Storage", StDType::BF16}, {"torch.DoubleStorage", StDType::F64},
      {"torch.LongStorage", StDType::I64}, {"torch.IntStorage", StDType::I32},
      {"torch.ShortStorage", StDType::I16}, {"torch.CharStorage", StDType::I8},
      {"torch.ByteStorage", StDType::U8}, {"torch.BoolStorage", StDType::BOOL}};
  return m;
}
// Data-only classes of training checkpoints: accepted as opaque values, never called.
const std::set<std::string>& inert_globals() {
  static const std::set<std::string> s = {
      "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint", "numpy.core.multiarray.scalar",
      "numpy._core.multiarray.scalar", "numpy.dtype", "_codecs.encode", "builtins.set", "__builtin__.set",
      "torch.torch_version.TorchVersion"};
  return s;
}

class Unpickler {
 public:
  Unpickler(const std::string& what, const uint8_t* p, size_t n)
      : what_(what), p_(p), end_(p + n), max_cells_(std::min<size_t>(kMaxCells, n / 2 + kFreeCells)) {}
  // A pickle may make cycles (a list appended to itself through the memo), which shared_ptr
  // never frees: every object made is kept here and unlinked when the machine ends.
  ~Unpickler() {
    for (const Ref& r : made_) {
      r->items.clear();
      r->dict.clear();
    }
  }
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  Ref run() {
    for (;;) {
      if (p_ >= end_) fail(what_, "the pickle ends without STOP (truncated?)");
      const uint8_t op = *p_++;
      switch (op) {
        case 0x80: u8(); break;                  // PROTO
        case 0x95: u64(); break;                 // FRAME (a length hint)
        case '.': return pop();                  // STOP
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case '}': push(make(Obj::kDict)); break;
        case ']': push(make(Obj::kList)); break;
        case ')': push(make(Obj::kTuple)); break;
        case 0x8f: push(make(Obj::kList)); break;  // EMPTY_SET, kept as a list
        case 't': push(tuple(since_mark())); break;
        case 0x85: push(tuple(popn(1))); break;
        case 0x86: push(tuple(popn(2))); break;
        case 0x87: push(tuple(popn(3))); break;
        case 's': { std::vector<Ref> kv = popn(2); setitems(top(), kv); break; }
        case 'u': { std::vector<Ref> kv = since_mark(); setitems(top(), kv); break; }
        case 'a': { Ref v = pop(); append(top(), {v}); break; }
        case 'e': case 0x90: { std::vector<Ref> v = since_mark(); append(top(), v); break; }  // APPENDS, ADDITEMS
        case 'X': push(str(u32())); break;       // BINUNICODE
        case 0x8c: push(str(u8())); break;       // SHORT_BINUNICODE
        case 0x8d: push(str(u64())); break;      // BINUNICODE8
        case 'B': push(str(u32())); break;       // BINBYTES
        case 'C': push(str(u8())); break;        // SHORT_BINBYTES
        case 'U': push(str(u8())); break;        // SHORT_BINSTRING
        case 'T': push(str(u32())); break;       // BINSTRING
        case 'J': push(integer((int32_t)u32())); break;
        case 'K': push(integer(u8())); break;
        case 'M': push(integer(u16())); break;
        case 0x8a: push(long1()); break;         // LONG1
        case 'N': push(make(Obj::kNone)); break;
        case 0x88: case 0x89: { Ref b = make(Obj::kBool); b->i = op == 0x88; push(b); break; }
        case 'G': push(binfloat()); break;
        case 'q': memo(u8()); break;             // BINPUT
        case 'r': memo(u32()); break;            // LONG_BINPUT
        case 0x94: memo(memo_.size()); break;    // MEMOIZE
        case 'h': push(recall(u8())); break;     // BINGET
        case 'j': push(recall(u32())); break;    // LONG_BINGET
        case 'c': { std::string m = line(), n = line(); push(global(m + "." + n)); break; }  // GLOBAL
        case 0x93: {                             // STACK_GLOBAL
          std::vector<Ref> mn = popn(2);
          if (mn[0]->kind != Obj::kStr || mn[1]->kind != Obj::kStr) fail(what_, "STACK_GLOBAL of non-strings");
          push(global(mn[0]->s + "." + mn[1]->s));
          break;
        }
        case 'R': { std::vector<Ref> fa = popn(2); push(call(fa[0], fa[1])); break; }   // REDUCE
        case 0x81: { std::vector<Ref> ca = popn(2); push(call(ca[0], ca[1])); break; }  // NEWOBJ
        case 'b': pop(); break;  // BUILD: the state of an opaque object (or an OrderedDict's); not applied
        case 'Q': push(persistent(pop())); break;  // BINPERSID
        case '0': pop(); break;                   // POP
        case '1': since_mark(); break;            // POP_MARK
        case '2': push(top()); break;             // DUP
        default: {
          char b[8];
          std::snprintf(b, sizeof b, "0x%02x", op);
          fail(what_, std::string("pickle opcode ") + b + " at byte " + std::to_string(p_ - 1 - start_) +
                          " is not one a state dict needs; refused (nothing was executed)");
        }
      }
      if (stack_.size() > kMaxStack || memo_.size() > kMaxMemo) fail(what_, "pickle nests too deeply");
    }
  }

 private:
  // What the machine holds grows with the objects it makes (~250 bytes each, kept in made_ until
  // it ends) and the references that tuples, lists and dicts hold (16 bytes each), not with the
  // pickle's bytes: "N0" (None, POP) is 2 bytes an object, so 10 million of them took 2.7 GB.
  // Both are counted and bounded by the pickle's size (real ones spend 5–8 bytes an object: a
  // tensor's entry is ~15 objects in ~100 bytes) and absolutely: kMaxCells is some 130,000
  // tensors, many times a training checkpoint's (SD v1.x with EMA and Adam state: under 10,000),
  // and keeps the machine's peak near 500 MB whatever the file.
  static constexpr size_t kMaxCells = 2000000, kFreeCells = 65536;
  void count(size_t n) {
    cells_ += n;
    if (cells_ > max_cells_)
      fail(what_, "the pickle builds more than " + std::to_string(max_cells_) +
                      " objects and references (one per 2 bytes of its " + std::to_string(end_ - start_) +
                      " bytes, at most " + std::to_string(kMaxCells) + "), more than a state dict needs; refused");
  }
  Ref make(Obj::Kind k) {
    count(1);
    made_.push_back(std::make_shared<Obj>());
    made_.back()->kind = k;
    return made_.back();
  }
  static constexpr size_t kMaxStack = 1 << 20, kMaxMemo = 1 << 22;  // SD checkpoints: ~10 memo entries a tensor
  void need(size_t n) {
    if ((size_t)(end_ - p_) < n) fail(what_, "the pickle is truncated");
  }
  uint64_t le(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= (uint64_t)p_[k] << (8 * k);
    p_ += n;
    return v;
  }
  uint8_t u8() { return (uint8_t)le(1); }
  uint16_t u16() { return (uint16_t)le(2); }
  uint32_t u32() { return (uint32_t)le(4); }
  uint64_t u64() { return le(8); }
  std::string line() {
    const uint8_t* nl = (const uint8_t*)std::memchr(p_, '\n', end_ - p_);
    if (!nl) fail(what_, "GLOBAL without its newline");
    std::string s((const char*)p_, nl - p_);
    p_ = nl + 1;
    return s;
  }
  Ref str(uint64_t n) {
    need(n);
    Ref r = make(Obj::kStr);
    r->s.assign((const char*)p_, n);
    p_ += n;
    return r;
  }
  Ref integer(int64_t v) {
    Ref r = make(Obj::kInt);
    r->i = v;
    return r;
  }
  Ref long1() {
    const uint8_t n = u8();
    if (n > 8) fail(what_, "an integer of " + std::to_string(n) + " bytes");
    need(n);
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v |= (uint64_t)p_[k] << (8 * k);
    if (n > 0 && n < 8 && (p_[n - 1] & 0x80)) v |= ~0ull << (8 * n);  // two's complement sign
    p_ += n;
    return integer((int64_t)v);
  }
  Ref binfloat() {  // a float's value is never needed (training metadata): skipped
    need(8);
    p_ += 8;
    return make(Obj::kFloat);
  }
  void push(Ref r) { stack_.push_back(std::move(r)); }
  Ref pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail(what_, "pickle stack underflow");
    Ref r = stack_.back();
    stack_.pop_back();
    return r;
  }
  Ref& top() {
    if (stack_.empty()) fail(what_, "pickle stack underflow");
    return stack_.back();
  }
  std::vector<Ref> popn(size_t n) {
    if (stack_.size() < n + (marks_.empty() ? 0 : marks_.back())) fail(what_, "pickle stack underflow");
    std::vector<Ref> v(stack_.end() - n, stack_.end());
    stack_.resize(stack_.size() - n);
    return v;
  }
  std::vector<Ref> since_mark() {
    if (marks_.empty()) fail(what_, "pickle MARK missing");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> v(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return v;
  }
  Ref tuple(std::vector<Ref> items) {
    count(items.size());
    Ref r = make(Obj::kTuple);
    r->items = std::move(items);
    return r;
  }
  void setitems(Ref& d, const std::vector<Ref>& kv) {
    if (kv.size() % 2) fail(what_, "SETITEMS with an odd count");
    if (d->kind == Obj::kOpaque) return;
    if (d->kind != Obj::kDict) fail(what_, "SETITEM(S) on something that is not a dict");
    count(kv.size());
    for (size_t k = 0; k < kv.size(); k += 2) d->dict.push_back({kv[k], kv[k + 1]});
  }
  void append(Ref& l, const std::vector<Ref>& v) {
    if (l->kind == Obj::kOpaque) return;
    if (l->kind != Obj::kList) fail(what_, "APPEND(S) on something that is not a list");
    count(v.size());
    l->items.insert(l->items.end(), v.begin(), v.end());
  }
  void memo(size_t k) {
    if (stack_.empty()) fail(what_, "memo of an empty stack");
    if (memo_.size() <= k) {
      if (k > kMaxMemo) fail(what_, "memo index " + std::to_string(k) + " out of range");
      memo_.resize(k + 1);
    }
    memo_[k] = stack_.back();
  }
  Ref recall(size_t k) {
    if (k >= memo_.size() || !memo_[k]) fail(what_, "memo index " + std::to_string(k) + " never stored");
    return memo_[k];
  }
  Ref global(const std::string& name) {
    const bool known = name == "collections.OrderedDict" || name == "torch._utils._rebuild_tensor_v2" ||
                       name == "torch._utils._rebuild_parameter" || storage_types().count(name) ||
                       inert_globals().count(name);
    if (!known)
      fail(what_, "the pickle names '" + name +
                      "', which a state dict does not need; refused (nothing was executed). Only "
                      "torch.save'd weights load; convert other files to .safetensors with the tool that made them");
    Ref r = make(Obj::kGlobal);
    r->s = name;
    return r;
  }
  int64_t as_int(const Ref& r, const char* field) {
    if (r->kind != Obj::kInt) fail(what_, std::string("_rebuild_tensor_v2: ") + field + " is not an integer");
    return r->i;
  }
  Shape as_shape(const Ref& r, const char* field) {
    if (r->kind != Obj::kTuple) fail(what_, std::string("_rebuild_tensor_v2: ") + field + " is not a tuple");
    Shape s;
    for (const Ref& d : r->items) {
      s.push_back(as_int(d, field));
      if (s.back() < 0) fail(what_, std::string("_rebuild_tensor_v2: a negative ") + field);
    }
    return s;
  }
  // What "calling" an allowed global means here.
  Ref call(const Ref& f, const Ref& args) {
    if (f->kind != Obj::kGlobal) fail(what_, "REDUCE of something that is not a known global");
    if (args->kind != Obj::kTuple) fail(what_, "REDUCE arguments are not a tuple");
    const std::string& n = f->s;
    const auto& a = args->items;
    if (n == "collections.OrderedDict") return make(Obj::kDict);
    if (n == "torch._utils._rebuild_parameter") {
      if (a.empty() || a[0]->kind != Obj::kTensor) fail(what_, "_rebuild_parameter of something not a tensor");
      return a[0];
    }
    if (n == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4 || a[0]->kind != Obj::kStorage) fail(what_, "_rebuild_tensor_v2 without a storage");
      Ref t = make(Obj::kTensor);
      t->tensor = a[0]->tensor;
      t->tensor.storage_offset = as_int(a[1], "storage_offset");
      t->tensor.shape = as_shape(a[2], "size");
      const Shape stride = as_shape(a[3], "stride");
      if (stride.size() != t->tensor.shape.size()) fail(what_, "_rebuild_tensor_v2: size and stride differ in rank");
      // Contiguous (row-major; a dimension of size 1 may have any stride): its bytes are one range.
      int64_t expect = 1;
      for (size_t d = t->tensor.shape.size(); d-- > 0;) {
        if (t->tensor.shape[d] != 1 && stride[d] != expect) {
          t->tensor.storage_key = "";  // marks a non-contiguous tensor, refused by name below
          break;
        }
        if (t->tensor.shape[d] && expect > INT64_MAX / t->tensor.shape[d])
          fail(what_, "_rebuild_tensor_v2: the shape's element count overflows");
        expect *= t->tensor.shape[d];
      }
      return t;
    }
    return make(Obj::kOpaque);  // an inert class: never called
  }
  // BINPERSID: ('storage', <storage class>, key, location, numel).
  Ref persistent(const Ref& pid) {
    if (pid->kind != Obj::kTuple || pid->items.size() != 5 || pid->items[0]->kind != Obj::kStr ||
        pid->items[0]->s != "storage" || pid->items[1]->kind != Obj::kGlobal || pid->items[2]->kind != Obj::kStr ||
        pid->items[4]->kind != Obj::kInt)
      fail(what_, "a persistent id that is not ('storage', type, key, location, numel)");
    auto st = storage_types().find(pid->items[1]->s);
    if (st == storage_types().end()) fail(what_, "storage of type '" + pid->items[1]->s + "'");
    Ref r = make(Obj::kStorage);
    r->tensor.dtype = st->second;
    r->tensor.storage_key = pid->items[2]->s;
    r->tensor.storage_numel = pid->items[4]->i;
    if (r->tensor.storage_numel < 0 || r->tensor.storage_key.empty())
      fail(what_, "a storage with a negative size or an empty key");
    return r;
  }

  std::string what_;
  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* start_ = p_;
  std::vector<Ref> stack_, memo_, made_;
  std::vector<size_t> marks_;
  size_t max_cells_;
  size_t cells_ = 0;
};

// ---- the zip container ----

struct Member {
  uint64_t offset = 0;  // of the data, from the start of the file
  uint64_t size = 0;
};

std::map<std::string, Member> zip_members(const std::string& path, const uint8_t* f, size_t size) {
  auto rd = [&](uint64_t at, size_t n) -> uint64_t {
    if (at > size || size - at < n) fail(path, "the zip directory points past the end of the file (truncated?)");
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= (uint64_t)f[at + k] << (8 * k);
    return v;
  };
  // The end-of-central-directory record: the last "PK\5\6" within the final 64 KiB + 22 bytes.
  if (size < 22) fail(path, "too short to be a zip file");
  uint64_t eocd = UINT64_MAX;
  for (uint64_t at = size - 22;; --at) {
    if (rd(at, 4) == 0x06054b50) {
      eocd = at;
      break;
    }
    if (at == 0 || size - at > 65536 + 22) break;
  }
  if (eocd == UINT64_MAX) fail(path, "no zip end-of-directory record (truncated, or not a torch.save file)");
  uint64_t count = rd(eocd + 10, 2), cd = rd(eocd + 16, 4);
  if (count == 0xFFFF || cd == 0xFFFFFFFF) {  // zip64: the locator sits just before
    if (eocd < 20 || rd(eocd - 20, 4) != 0x07064b50) fail(path, "zip64 locator missing");
    const uint64_t rec = rd(eocd - 20 + 8, 8);
    if (rd(rec, 4) != 0x06064b50) fail(path, "zip64 end-of-directory record missing");
    count = rd(rec + 32, 8);
    cd = rd(rec + 48, 8);
  }
  if (count > size / 46) fail(path, "the zip directory claims more entries than the file can hold");
  std::map<std::string, Member> out;
  uint64_t at = cd;
  for (uint64_t e = 0; e < count; ++e) {
    if (rd(at, 4) != 0x02014b50) fail(path, "a damaged zip directory entry");
    const uint64_t method = rd(at + 10, 2), nlen = rd(at + 28, 2), xlen = rd(at + 30, 2), clen = rd(at + 32, 2);
    uint64_t csize = rd(at + 20, 4), usize = rd(at + 24, 4), local = rd(at + 42, 4);
    if (at + 46 + nlen > size) fail(path, "a zip entry name past the end of the file");
    const std::string name((const char*)f + at + 46, nlen);
    // zip64 extra field: the 64-bit values of the fields set to all ones, in this order.
    for (uint64_t x = at + 46 + nlen; x + 4 <= at + 46 + nlen + xlen;) {
      const uint64_t id = rd(x, 2), len = rd(x + 2, 2);
      if (id == 0x0001) {
        uint64_t y = x + 4;
        if (usize == 0xFFFFFFFF) usize = rd(y, 8), y += 8;
        if (csize == 0xFFFFFFFF) csize = rd(y, 8), y += 8;
        if (local == 0xFFFFFFFF) local = rd(y, 8), y += 8;
      }
      x += 4 + len;
    }
    if (rd(local, 4) != 0x04034b50) fail(path, "zip member '" + name + "' has no local header");
    const uint64_t data = local + 30 + rd(local + 26, 2) + rd(local + 28, 2);
    if (method != 0 && csize > 0)
      fail(path, "zip member '" + name + "' is compressed; torch.save stores members uncompressed (re-saved by another tool?)");
    if (data > size || size - data < csize) fail(path, "zip member '" + name + "' runs past the end of the file (truncated?)");
    out[name] = Member{data, csize};
    (void)usize;
    at += 46 + nlen + xlen + clen;
  }
  return out;
}

// The state dict inside the unpickled object.
const Obj* state_dict_of(const Obj& top) {
  if (top.kind != Obj::kDict) return nullptr;
  for (const auto& [k, v] : top.dict)
    if (k->kind == Obj::kStr && k->s == "state_dict" && v->kind == Obj::kDict) return v.get();
  return &top;
}

}  // namespace

std::vector<TorchTensorRef> unpickle_state_dict(const std::string& what, const uint8_t* data, size_t size) {
  Unpickler u(what, data, size);
  const Ref top = u.run();
  const Obj* sd = state_dict_of(*top);
  if (!sd) fail(what, "the pickle holds no dict of tensors");
  std::vector<TorchTensorRef> out;
  for (const auto& [k, v] : sd->dict) {
    if (v->kind != Obj::kTensor || k->kind != Obj::kStr) continue;
    TorchTensorRef t = v->tensor;
    t.name = k->s;
    if (t.storage_key.empty()) fail(what, "tensor '" + t.name + "' is not contiguous; save it with .contiguous()");
    out.push_back(std::move(t));
  }
  return out;
}

std::unique_ptr<SafetensorsFile> open_torch_checkpoint(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    fail(path, "empty or unreadable");
  }
  const size_t size = (size_t)st.st_size;
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));
  try {
    const uint8_t* f = static_cast<const uint8_t*>(m);
    const std::map<std::string, Member> members = zip_members(path, f, size);
    std::string prefix;
    for (const auto& [name, mem] : members)
      if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0 &&
          name.find('/') == name.size() - 9)
        prefix = name.substr(0, name.size() - 8);
    if (prefix.empty() && !members.count("data.pkl")) fail(path, "a zip without data.pkl: not a torch.save file");
    const Member& pkl = members.at(prefix + "data.pkl");
    std::vector<StTensorInfo> tensors;
    for (const TorchTensorRef& t : unpickle_state_dict(path, f + pkl.offset, pkl.size)) {
      auto mem = members.find(prefix + "data/" + t.storage_key);
      if (mem == members.end()) fail(path, "tensor '" + t.name + "': its storage data/" + t.storage_key + " is missing");
      StTensorInfo info;
      info.name = t.name;
      info.dtype = t.dtype;
      info.shape = t.shape;
      const uint64_t el = st_dtype_size(t.dtype);
      const uint64_t numel = (uint64_t)info.numel();
      if ((uint64_t)t.storage_numel > mem->second.size / el ||
          (uint64_t)t.storage_offset > (uint64_t)t.storage_numel ||
          numel > (uint64_t)t.storage_numel - (uint64_t)t.storage_offset)
        fail(path, "tensor '" + t.name + "' " + shape_str(t.shape) + " at element " +
                       std::to_string(t.storage_offset) + " lies outside its storage (truncated?)");
      info.begin = (size_t)(mem->second.offset + (uint64_t)t.storage_offset * el);
      info.end = info.begin + (size_t)(numel * el);
      tensors.push_back(std::move(info));
    }
    return SafetensorsFile::adopt(path, m, size, std::move(tensors));
  } catch (...) {
    munmap(m, size);
    throw;
  }
}

std::unique_ptr<SafetensorsFile> open_weights_file(const std::string& path) {
  try {
    return SafetensorsFile::open(path);
  } catch (const Error&) {
    const PyTorchMagic magic = pytorch_magic(path);
    if (magic == PyTorchMagic::kZip) return open_torch_checkpoint(path);
    if (magic == PyTorchMagic::kPickle)
      throw_model(path + " is a PyTorch checkpoint in the legacy (pre-1.6) format; only torch.save's zip "
                  "format and .safetensors load. Re-save it with a current PyTorch, or use the .safetensors file");
    throw;
  }
}

}  // namespace sdgen
