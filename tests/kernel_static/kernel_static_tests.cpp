// Static evidence about the compiled CUDA kernels, no GPU needed: what ptxas reported while
// compiling kernels/*.cu for the real architectures (<build>/ptxas/<file>.sm_<arch>.txt, written by
// the build's sdgen_ptxas_reports target with the flags of sdgen_cuda), and the SASS of those
// cubins as cuobjdump disassembles it.
//   KernelStatic.ResourceTable  prints registers, spills, stack and shared memory per kernel (and
//                               writes it to <build>/ptxas/resource_table.txt)
//   KernelStatic.NoSpills       attention and normalization kernels: no spill, no stack frame
//   KernelStatic.TensorCores    the fp16 flash-attention kernels issue HMMA (sm_80) / HMMA or
//                               HGMMA (sm_90)
// The emulated tests prove the kernels compute the right thing; these prove the compiled code is
// the fast kind, which no emulator shows.
#include <cxxabi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Kernel files whose every function must keep its working set in registers. Each launches with
// the instantiations compiled into it; where a kernel has __launch_bounds__, ptxas fitted the
// registers to that block size, and without one it could use up to 255 per thread, which a block
// of at most 256 threads can hold (KernelStatic.BlocksFitTheRegisterFile checks both against
// kMaxBlock). So a spill in the report is a spill at the launch configuration.
const std::vector<std::string> kSpillFreeFiles = {"attention", "groupnorm", "layernorm", "softmax"};
// The largest block each kernel is launched with, where it is more than 256 threads (the launchers
// in kernels/*.cu): its registers times that many threads must fit the SM's 64K registers.
const std::map<std::string, int> kMaxBlock = {{"group_norm_stats_kernel", 1024}, {"group_norm_apply_kernel", 1024}};
// The fp16 tensor-core flash-attention kernels (kernels/attention.cu, the "mma" version).
const char* const kTensorCoreFamily = "flash_attention_mma_kernel";
const std::vector<std::string> kSassArchs = {"80", "90"};

struct Function {
  std::string file, arch, name;  // name demangled
  bool entry = false;
  int regs = -1;
  long stack = 0, spill_stores = 0, spill_loads = 0, smem = 0;
};

// "void sdgen::kernels::(anonymous namespace)::k<__half, 4>(Params)" -> "k<__half, 4>".
std::string short_name(const std::string& full) {
  std::string s = full;
  // The parameter list: the last top-level '(' ... ')'.
  int depth = 0;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == ')') ++depth;
    if (s[i] == '(' && --depth == 0) {
      s = s.substr(0, i);
      break;
    }
  }
  if (s.rfind("void ", 0) == 0) s = s.substr(5);
  // Namespaces: the last "::" outside template brackets.
  depth = 0;
  size_t cut = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (depth == 0 && s[i] == ':' && s[i + 1] == ':') cut = i + 2;
  }
  s = s.substr(cut);
  // Functor types in template arguments: "map_kernel<float, SiluF>".
  const std::string ns = "sdgen::kernels::(anonymous namespace)::";
  for (size_t p; (p = s.find(ns)) != std::string::npos;) s.erase(p, ns.size());
  return s;
}

// Parses one ptxas -v report. Its lines, per function:
//   ptxas info    : Compiling entry function 'NAME' for 'sm_80'
//   ptxas info    : Function properties for NAME
//       N bytes stack frame, N bytes spill stores, N bytes spill loads
//   ptxas info    : Used N registers, ..., N bytes smem, ...
// "Function properties" also comes for non-inlined device functions, which count as well.
std::vector<Function> parse_report(const fs::path& path, const std::string& file,
                                   const std::string& arch) {
  static const std::regex entry_re(R"(Compiling entry function '(.*)' for 'sm_)");
  static const std::regex props_re(R"(Function properties for (.*)$)");
  static const std::regex frame_re(
      R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)");
  static const std::regex used_re(R"(Used (\d+) registers)");
  static const std::regex smem_re(R"((\d+) bytes smem)");
  std::vector<Function> out;
  std::ifstream in(path);
  std::string line;
  int entry = -1, props = -1;
  auto find_or_add = [&](const std::string& name) {
    for (size_t i = 0; i < out.size(); ++i)
      if (out[i].name == name) return (int)i;
    out.push_back(Function{file, arch, name});
    return (int)out.size() - 1;
  };
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, entry_re)) {
      entry = find_or_add(m[1]);
      out[entry].entry = true;
    } else if (std::regex_search(line, m, props_re)) {
      props = find_or_add(m[1]);
    } else if (std::regex_search(line, m, frame_re)) {
      if (props < 0) continue;
      out[props].stack = std::stol(m[1]);
      out[props].spill_stores = std::stol(m[2]);
      out[props].spill_loads = std::stol(m[3]);
    } else if (std::regex_search(line, m, used_re)) {
      if (entry < 0) continue;
      out[entry].regs = std::stoi(m[1]);
      if (std::regex_search(line, m, smem_re)) out[entry].smem = std::stol(m[1]);
    }
  }
  return out;
}

struct Reports {
  std::vector<Function> functions;
  std::set<std::string> files, archs;
  std::string error;  // non-empty: no reports
};

const Reports& reports() {
  static const Reports r = [] {
    Reports r;
    const fs::path dir = SDGEN_PTXAS_DIR;
    if (!fs::is_directory(dir)) {
      r.error = "no ptxas reports in " + dir.string() + " (build the target sdgen_ptxas_reports)";
      return r;
    }
    static const std::regex name_re(R"(^(\w+)\.sm_(\w+)\.txt$)");
    std::vector<fs::path> paths;
    for (const auto& e : fs::directory_iterator(dir)) paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    std::smatch m;
    for (const auto& p : paths) {
      const std::string base = p.filename().string();
      if (!std::regex_match(base, m, name_re)) continue;
      const std::string file = m[1], arch = m[2];
      r.files.insert(file);
      r.archs.insert(arch);
      for (auto& f : parse_report(p, file, arch)) r.functions.push_back(std::move(f));
    }
    if (r.functions.empty()) r.error = "no function in the ptxas reports of " + dir.string();
    return r;
  }();
  return r;
}

// Every report the build is meant to write (kernel files × architectures, from CMake).
std::vector<std::pair<std::string, std::string>> expected_reports() {
  std::vector<std::string> files, archs;
  std::stringstream fs_(SDGEN_PTXAS_FILES), as(SDGEN_PTXAS_ARCHS);
  std::string t;
  while (std::getline(fs_, t, ','))
    if (!t.empty()) files.push_back(t);
  while (std::getline(as, t, ','))
    if (!t.empty()) archs.push_back(t);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& f : files)
    for (auto& a : archs) out.emplace_back(f, a);
  return out;
}

// A block of the largest size a kernel is launched with must fit in the register file, or the
// launch fails on the device ("too many resources requested for launch") though it compiled.
TEST(KernelStatic, BlocksFitTheRegisterFile) {
  const Reports& r = reports();
  ASSERT_TRUE(r.error.empty()) << r.error;
  int checked = 0, big = 0;
  for (const auto& f : r.functions) {
    if (!f.entry || f.regs < 0) continue;
    int block = 256;
    const std::string name = short_name(f.name);
    for (const auto& [prefix, n] : kMaxBlock)
      if (name.rfind(prefix, 0) == 0) block = n, ++big;
    ++checked;
    EXPECT_LE((long)f.regs * block, 65536L) << f.file << ".cu, sm_" << f.arch << ": " << f.name << " uses " << f.regs
                                            << " registers per thread; a block of " << block << " needs more than 64K";
  }
  EXPECT_GT(checked, 0);
  EXPECT_GT(big, 0) << "no kernel of kMaxBlock found in the reports";
  std::printf("%d kernel entries checked, %d at their 1024-thread blocks\n", checked, big);
}

TEST(KernelStatic, ResourceTable) {
  const Reports& r = reports();
  ASSERT_TRUE(r.error.empty()) << r.error;
  for (const auto& [file, arch] : expected_reports())
    EXPECT_TRUE(fs::exists(fs::path(SDGEN_PTXAS_DIR) / (file + ".sm_" + arch + ".txt")))
        << "missing report " << file << ".sm_" << arch << ".txt";
  // One row per kernel, one column per architecture: registers, then "s<stores>/<loads>" where a
  // spill is, "k<bytes>" where a stack frame is; shared memory (static) at the end.
  std::map<std::pair<std::string, std::string>, std::map<std::string, const Function*>> rows;
  for (const auto& f : r.functions) rows[{f.file, short_name(f.name)}][f.arch] = &f;
  std::ostringstream os;
  os << "registers per thread by architecture (s = spill stores/loads in bytes, k = stack frame "
        "bytes, smem = static shared bytes)\n";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-12s %-42s", "file", "kernel");
  os << buf;
  for (const auto& a : r.archs) {
    std::snprintf(buf, sizeof buf, " %19s", ("sm_" + a).c_str());
    os << buf;
  }
  os << "  smem\n";
  for (const auto& [key, by_arch] : rows) {
    std::snprintf(buf, sizeof buf, "%-12s %-42s", key.first.c_str(), key.second.c_str());
    os << buf;
    long smem = 0;
    for (const auto& a : r.archs) {
      auto it = by_arch.find(a);
      std::string cell = "-";
      if (it != by_arch.end()) {
        const Function& f = *it->second;
        cell = f.regs >= 0 ? std::to_string(f.regs) : "fn";
        if (f.spill_stores || f.spill_loads)
          cell += " s" + std::to_string(f.spill_stores) + "/" + std::to_string(f.spill_loads);
        if (f.stack) cell += " k" + std::to_string(f.stack);
        smem = std::max(smem, f.smem);
      }
      std::snprintf(buf, sizeof buf, " %19s", cell.c_str());
      os << buf;
    }
    os << "  " << smem << "\n";
  }
  std::printf("%s", os.str().c_str());
  std::fflush(stdout);
  // Kept beside the reports, for reading without running the test.
  std::ofstream(fs::path(SDGEN_PTXAS_DIR) / "resource_table.txt") << os.str();
}

TEST(KernelStatic, NoSpills) {
  const Reports& r = reports();
  ASSERT_TRUE(r.error.empty()) << r.error;
  for (const auto& file : kSpillFreeFiles) {
    // A file that stopped being compiled must fail here, not pass with nothing to check.
    ASSERT_TRUE(r.files.count(file)) << "no ptxas report for kernels/" << file << ".cu";
    int checked = 0;
    for (const auto& f : r.functions) {
      if (f.file != file) continue;
      ++checked;
      EXPECT_EQ(f.spill_stores + f.spill_loads, 0)
          << file << ".cu, sm_" << f.arch << ": " << f.name << " spills " << f.spill_stores
          << " bytes (stores) / " << f.spill_loads << " bytes (loads) at " << f.regs
          << " registers";
      // A stack frame without spills is a register array the compiler could not keep in
      // registers (a loop over it that did not unroll): local memory all the same.
      EXPECT_EQ(f.stack, 0) << file << ".cu, sm_" << f.arch << ": " << f.name << " has a "
                            << f.stack << "-byte stack frame (local memory)";
    }
    EXPECT_GT(checked, 0) << "no function in the reports of kernels/" << file << ".cu";
    std::printf("kernels/%s.cu: %d functions × architectures checked\n", file.c_str(), checked);
  }
}

std::string demangle(const std::string& mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(
      abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && d ? std::string(d.get()) : mangled;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The opcode of a SASS line "        /*1cd0*/  @!P0 HMMA.16816.F32 R20, R48, R20, RZ ;  /* 0x... */"
// ("HMMA"), or "" for other lines.
std::string opcode(const std::string& line) {
  const size_t a = line.find("/*");
  if (a == std::string::npos) return "";
  const size_t b = line.find("*/", a);
  if (b == std::string::npos) return "";
  std::istringstream in(line.substr(b + 2));
  std::string tok;
  in >> tok;
  if (!tok.empty() && tok[0] == '@') in >> tok;  // a predicate
  return tok.substr(0, tok.find('.'));
}

// cuobjdump: $SDGEN_CUOBJDUMP, else what CMake found (scripts/install-deps.sh installs it).
std::string cuobjdump_path() {
  if (const char* e = std::getenv("SDGEN_CUOBJDUMP"); e && *e) return e;
  return SDGEN_CUOBJDUMP_FOUND;
}

bool cuobjdump_required() {
  for (const char* v : {"SDGEN_REQUIRE_CUOBJDUMP", "CI"}) {
    const char* e = std::getenv(v);
    if (e && *e && std::string(e) != "0" && std::string(e) != "false") return true;
  }
  return false;
}

TEST(KernelStatic, TensorCores) {
  const std::string tool = cuobjdump_path();
  if (tool.empty() || !fs::exists(tool)) {
    const std::string why = "cuobjdump not found (scripts/install-deps.sh installs it; or set "
                            "SDGEN_CUOBJDUMP): the SASS of the attention kernels is unchecked";
    if (cuobjdump_required()) FAIL() << why;
    GTEST_SKIP() << why;
  }
  // cuobjdump runs nvdisasm, which the install puts next to it.
  const std::string dir = fs::path(tool).parent_path().string();
  for (const auto& arch : kSassArchs) {
    const fs::path cubin = fs::path(SDGEN_PTXAS_DIR) / ("attention.sm_" + arch + ".cubin");
    ASSERT_TRUE(fs::exists(cubin)) << cubin << " missing (build the target sdgen_ptxas_reports)";
    const std::string cmd = "PATH=" + shell_quote(dir) + ":\"$PATH\" " + shell_quote(tool) +
                            " -sass " + shell_quote(cubin.string()) + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr) << cmd;
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    const int rc = pclose(p);
    ASSERT_EQ(rc, 0) << cmd << " failed:\n" << text.substr(0, 2000);
    // HMMA / HGMMA counts per function, in the order cuobjdump lists them.
    std::vector<std::pair<std::string, std::pair<int, int>>> counts;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      const size_t f = line.find("Function : ");
      if (f != std::string::npos) {
        std::istringstream name(line.substr(f + 11));
        std::string mangled;
        name >> mangled;
        counts.push_back({demangle(mangled), {0, 0}});
        continue;
      }
      if (counts.empty()) continue;
      const std::string op = opcode(line);
      counts.back().second.first += op == "HMMA";
      counts.back().second.second += op == "HGMMA";
    }
    int family = 0;
    std::printf("attention.cu, sm_%s: HMMA / HGMMA per function\n", arch.c_str());
    for (const auto& [name, c] : counts) {
      std::printf("  %-52s %5d %5d\n", short_name(name).c_str(), c.first, c.second);
      if (name.find(kTensorCoreFamily) == std::string::npos) continue;
      ++family;
      const int tc = arch == "80" ? c.first : c.first + c.second;
      EXPECT_GT(tc, 0) << "sm_" << arch << ": " << name << " issues no tensor-core instruction ("
                       << (arch == "80" ? "HMMA" : "HMMA or HGMMA") << ")";
    }
    EXPECT_GT(family, 0) << "sm_" << arch << ": no " << kTensorCoreFamily
                         << " in attention.cu's cubin: the fp16 path is not on tensor cores";
  }
  std::fflush(stdout);
}

}  // namespace
