// Static __shared__ arrays, found so that they can be poisoned before every block like dynamic
// shared memory. The __shared__ macro (simt_runtime.h) makes each array a function-local static
// thread_local and sets a marker, simt_shared_mark_<line>, declared just before it in the same
// function. A function-local static's mangled name starts with its function's (_ZZ<function>E,
// then the variable's length-prefixed name), so the executable's symbol table tells which
// thread-local statics share a function with a marker: those are shared arrays, since CUDA code
// cannot declare thread_local variables of its own, while other thread-local statics (the CPU
// backend's scratch buffers, for one) live in functions without markers and are left alone.
// Thread-local symbols hold offsets into the executable's TLS block; our own g_block, defined in
// the same executable, locates this OS thread's copy of that block.
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "simt_internal.h"

namespace simt {
namespace detail {

namespace {

constexpr char kMarker[] = "simt_shared_mark_";
constexpr char kAnchor[] = "_ZN4simt6detail7g_blockE";  // simt::detail::g_block

struct Function {
  std::vector<size_t> markers;                    // TLS offsets of the one-byte markers
  std::vector<std::pair<size_t, size_t>> arrays;  // TLS offset and size of each array
};

struct Program {
  std::vector<Function> functions;
  size_t anchor = 0;
};

[[noreturn]] void cannot(const std::string& why) {
  fault("static __shared__ arrays cannot be found for poisoning: " + why +
        " (the emulator needs the executable's symbol table: do not strip it)");
}

void read_at(int fd, void* dst, size_t n, size_t off) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r <= 0) cannot("short read of /proc/self/exe");
    p += r, off += (size_t)r, n -= (size_t)r;
  }
}

bool starts_with(const char* s, const std::string& prefix) {
  return std::strncmp(s, prefix.c_str(), prefix.size()) == 0;
}

struct File {
  int fd;
  ~File() {
    if (fd >= 0) close(fd);
  }
};

Program scan() {
  File exe{open("/proc/self/exe", O_RDONLY | O_CLOEXEC)};
  if (exe.fd < 0) cannot("cannot open /proc/self/exe");
  Elf64_Ehdr eh;
  read_at(exe.fd, &eh, sizeof eh, 0);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_shentsize != sizeof(Elf64_Shdr))
    cannot("/proc/self/exe is not a 64-bit ELF file");
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  read_at(exe.fd, sh.data(), sh.size() * sizeof(Elf64_Shdr), eh.e_shoff);
  std::vector<Elf64_Sym> syms;
  std::vector<char> names;
  for (const Elf64_Shdr& s : sh) {
    if (s.sh_type != SHT_SYMTAB || s.sh_link >= sh.size()) continue;
    syms.resize(s.sh_size / sizeof(Elf64_Sym));
    read_at(exe.fd, syms.data(), syms.size() * sizeof(Elf64_Sym), s.sh_offset);
    names.resize(sh[s.sh_link].sh_size + 1, '\0');  // the extra NUL ends any unterminated name
    read_at(exe.fd, names.data(), names.size() - 1, sh[s.sh_link].sh_offset);
    break;
  }
  if (syms.empty()) cannot("the executable has no symbol table");

  Program prog;
  bool anchored = false;
  std::map<std::string, Function> by_prefix;  // "_ZZ<function>E" -> its markers and arrays
  std::vector<const Elf64_Sym*> statics;
  for (const Elf64_Sym& s : syms) {
    if (ELF64_ST_TYPE(s.st_info) != STT_TLS || s.st_name >= names.size()) continue;
    const char* name = names.data() + s.st_name;
    if (std::strcmp(name, kAnchor) == 0) {
      prog.anchor = s.st_value;
      anchored = true;
    } else if (const char* m = std::strstr(name, kMarker)) {
      const char* p = m;  // back over the length that prefixes the marker's name
      while (p > name && std::isdigit((unsigned char)p[-1])) --p;
      if (p == m || p == name || p[-1] != 'E' || !starts_with(name, "_ZZ"))
        cannot(std::string("unexpected marker symbol ") + name);
      by_prefix[std::string(name, p)].markers.push_back(s.st_value);
    } else if (starts_with(name, "_ZZ")) {
      statics.push_back(&s);
    }
  }
  if (!anchored) cannot(std::string("no thread-local symbol ") + kAnchor);
  for (const Elf64_Sym* s : statics) {
    const char* name = names.data() + s->st_name;
    for (auto& [prefix, f] : by_prefix)
      if (starts_with(name, prefix) && std::isdigit((unsigned char)name[prefix.size()]))
        f.arrays.emplace_back(s->st_value, s->st_size);
  }
  for (auto& [prefix, f] : by_prefix) prog.functions.push_back(std::move(f));
  return prog;
}

}  // namespace

void poison_static_shared() {
  static const Program prog = scan();
  thread_local char* const tls = reinterpret_cast<char*>(&g_block) - prog.anchor;
  thread_local bool first = true;  // a thread's statics start as zeros, not poison
  for (const Function& f : prog.functions) {
    bool used = first;
    for (size_t m : f.markers) {
      used = used || tls[m] != 0;
      tls[m] = 0;
    }
    if (used)
      for (auto [offset, size] : f.arrays) std::memset(tls + offset, 0xff, size);
  }
  first = false;
}

}  // namespace detail
}  // namespace simt
