// Inputs whose memory is bounded before they are read whole, by the work they describe or by what
// they are (hardening round 2, item 2): sd-gen bench runs generation's memory check before a
// weight loads; a prompt file is a file or a pipe of at most 64 MiB, lines of at most 1 MiB and
// 1,000,000 prompts, bounded while it is read; a safetensors header is at most the 100,000,000
// bytes the format allows and 1,000,000 JSON values; a .ckpt's pickle builds at most one object or
// reference per 2 bytes of it (and 2,000,000). Each refusal is one line and its exit code.
// The runs through the binary have 4 GB of address space (ulimit -v), so that a bound that stops
// holding fails the test instead of taking the machine's memory.
#include <cstdint>
#include <cstring>

#include "cli_fixture.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "sdgen/error.h"

namespace {
using namespace cli_test;

void put_le(std::string& s, uint64_t v, int bytes) {
  for (int k = 0; k < bytes; ++k) s += (char)((v >> (8 * k)) & 0xFF);
}

// A safetensors file of `n` empty F32 tensors ("t0": shape [0], data_offsets [0, 0]): each entry
// is 11 JSON values (its name, the object, three keys, "F32", two arrays, 0, 0, 0), the header
// one more (the outer object).
std::string empty_tensors_file(size_t n) {
  std::string h = "{";
  for (size_t i = 0; i < n; ++i)
    h += (i ? ",\"t" : "\"t") + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
  h += "}";
  std::string f;
  put_le(f, h.size(), 8);
  return f + h;
}

// A zip holding one stored member, archive/data.pkl, as torch.save writes it (CRCs are not read).
std::string ckpt_with_pickle(const std::string& pkl) {
  const std::string name = "archive/data.pkl";
  std::string z;
  put_le(z, 0x04034b50, 4), put_le(z, 20, 2), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 4);
  put_le(z, 0, 4), put_le(z, pkl.size(), 4), put_le(z, pkl.size(), 4), put_le(z, name.size(), 2), put_le(z, 0, 2);
  z += name + pkl;
  const size_t cd = z.size();
  put_le(z, 0x02014b50, 4), put_le(z, 20, 2), put_le(z, 20, 2), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 4);
  put_le(z, 0, 4), put_le(z, pkl.size(), 4), put_le(z, pkl.size(), 4), put_le(z, name.size(), 2);
  put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 4), put_le(z, 0, 4);
  z += name;
  const size_t cd_size = z.size() - cd;
  put_le(z, 0x06054b50, 4), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 1, 2), put_le(z, 1, 2);
  put_le(z, cd_size, 4), put_le(z, cd, 4), put_le(z, 0, 2);
  return z;
}

// Protocol 2: PROTO 2, `n` NONEs, STOP.
std::string nones_pickle(size_t n) { return std::string("\x80\x02", 2) + std::string(n, 'N') + "."; }

class InputBounds : public CliTest {
 protected:
  // sd-gen with `args` (bash words: a <(...) pipe works) in the work folder, with 4 GB of address space.
  Result capped(const std::string& args) {
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer reserves terabytes of address space for its shadow memory, so a capped
    // process could not start; the sanitized build checks the refusals without the cap.
    const std::string cap;
#else
    const std::string cap = "ulimit -v 4000000; ";
#endif
    std::string script = cap + "exec '" + std::string(SDGEN_CLI_PATH) + "' " + args;
    std::string quoted = "'";
    for (char c : script) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    quoted += "'";
    const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    const std::string cmd = "cd '" + dir_.string() + "' && OMP_WAIT_POLICY=PASSIVE SDGEN_MODEL= bash -c " + quoted +
                            " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
    const int status = std::system(cmd.c_str());
    Result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
    fs::remove(out);
    fs::remove(err);
    return r;
  }
  // Exactly one line on stderr (the runs are --quiet), `what` in it, and the exit code.
  void expect_refused(const Result& r, int code, const std::string& what) {
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("sd-gen: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << "wanted '" << what << "' in: " << r.err;
  }
  // The common options of a generation (cli_fixture.h) that refuses before it makes an image.
  std::string gen(const std::string& args) const { return common(args) + "-q -o out --seed 1 " + args; }
};

// Full-size SD v1.5 at 2048² × 64 in fp32: about 1.3 TiB of UNet activations (test_memory_estimate's
// HostMemoryIsTheDefaultLimit), refused before a random weight is made, against --max-memory as
// generation refuses it; fp16 alone names fp16 and gives no fp16 hint.
TEST_F(InputBounds, BenchRunsTheMemoryCheckBeforeAnyWeight) {
  const std::string bench = "bench -q -m random:sd15 --device cpu -b 64 --steps 1 -W 2048 -H 2048 --max-memory 2G";
  Result r = capped(bench);
  expect_refused(r, 5, "sd-gen: error: 2048x2048, batch 64, fp32 on cpu needs about ");
  EXPECT_NE(r.err.find(", more than the 2.0 GiB of --max-memory; use a smaller --batch or size, or --precision fp16\n"),
            std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  r = capped(bench + " --precision fp16");
  expect_refused(r, 5, "sd-gen: error: 2048x2048, batch 64, fp16 on cpu needs about ");
  EXPECT_NE(r.err.find("of --max-memory; use a smaller --batch or size\n"), std::string::npos) << r.err;
  // Generation's words for the same work (the function both call).
  r = capped(gen("-m random:sd15 -p x -b 64 -W 2048 -H 2048 --max-memory 2G"));
  expect_refused(r, 5, "sd-gen: error: 2048x2048, batch 64, fp32 on cpu needs about ");
  // --max-memory is read as generation reads it.
  expect_refused(capped(bench.substr(0, bench.size() - 2) + "lots"), 2, "--max-memory");
}

TEST_F(InputBounds, PromptFileIsAFileOrAPipe) {
  expect_refused(capped(gen("--prompt-file /dev/zero")), 2,
                 "sd-gen: error: --prompt-file /dev/zero: not a regular file or a pipe\n");
  // One endless line from a pipe: stopped at 1 MiB, naming the line.
  Result r = capped(gen("--prompt-file <(tr '\\0' a </dev/zero)"));
  expect_refused(r, 2, ":1: the line is longer than 1 MiB, the most a prompt-file line may hold\n");
  EXPECT_NE(r.err.find("sd-gen: error: /dev/fd/"), std::string::npos) << r.err;
  // Endless blank lines (no prompt among them): stopped at 64 MiB.
  r = capped(gen("--prompt-file <(yes '')"));
  expect_refused(r, 2, ": larger than 64 MiB, the most a prompt file may hold; split it into several files\n");
}

TEST_F(InputBounds, PromptFileLinesAndPrompts) {
  // 1 MiB is allowed, one byte more is not (the newline does not count; a '\r' before it does).
  write("ok.txt", "cat\n" + std::string(1 << 20, 'a') + "\n");
  write("long.txt", "cat\n" + std::string((1 << 20) + 1, 'a') + "\n");
  Result r = capped(gen("--prompt-file ok.txt --steps 0"));
  expect_refused(r, 2, "sd-gen: error: ok.txt:1: --steps 0 must be between 1 and 500\n");
  expect_refused(capped(gen("--prompt-file long.txt")), 2,
                 "sd-gen: error: long.txt:2: the line is longer than 1 MiB, the most a prompt-file line may hold\n");
  // 1,000,000 prompts are read (and line 1's --steps refused after); the 1,000,001st is refused
  // itself. Blank lines and comments are not prompts.
  std::string many = "# header\n\n";
  for (int i = 0; i < 1000000; ++i) many += "a\n";
  write("million.txt", many + "\n");
  write("more.txt", many + "b\n");
  expect_refused(capped(gen("--prompt-file million.txt --steps 0")), 2, "sd-gen: error: million.txt:3: --steps 0");
  expect_refused(capped(gen("--prompt-file more.txt")), 2,
                 "sd-gen: error: more.txt:1000003: more than 1000000 prompts, the most one prompt file may hold; "
                 "split it into several files\n");
}

TEST_F(InputBounds, SafetensorsHeaderAtMostTheFormatsSize) {
  // The format's 100,000,000 bytes: one more is refused, in a file that holds them (sparse: no
  // disk) and whatever they are; exactly that many are not.
  std::string f;
  put_le(f, 100000001, 8);
  write("big.safetensors", f + "{}");
  fs::resize_file(dir_ / "big.safetensors", 8 + 100000001);
  expect_refused(capped(gen("-p x -m big.safetensors")), 3,
                 "sd-gen: error: safetensors file big.safetensors: header length 100000001 is over the 100000000 "
                 "bytes the safetensors format allows\n");
  f.clear();
  put_le(f, 100000000, 8);
  write("edge.safetensors", f + "{}");
  fs::resize_file(dir_ / "edge.safetensors", 8 + 100000000);
  const std::string msg = any_error_of([&] { sdgen::SafetensorsFile::open((dir_ / "edge.safetensors").string()); });
  EXPECT_EQ(msg.find("the safetensors format allows"), std::string::npos) << msg;
}

TEST_F(InputBounds, SafetensorsHeaderValuesAreBounded) {
  // 90,000 empty tensors: 990,001 values, read; 100,000: 1,100,001, refused while parsing.
  write("ok.safetensors", empty_tensors_file(90000));
  EXPECT_EQ(sdgen::SafetensorsFile::open((dir_ / "ok.safetensors").string())->tensors().size(), 90000u);
  write("many.safetensors", empty_tensors_file(100000));
  expect_refused(capped(gen("-p x -m many.safetensors")), 3,
                 "sd-gen: error: safetensors file many.safetensors: header holds more than 1000000 JSON values "
                 "(some 71428 tensors' worth; models hold a few thousand): refused\n");
}

TEST_F(InputBounds, PickleObjectsAreBoundedByItsSize) {
  auto unpickle = [](const std::string& bytes) {
    return sdgen::unpickle_state_dict("p.pkl", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  };
  // n Nones are n + 3 bytes, which allow (n + 3) / 2 + 65,536 objects: 131,075 are read (and the
  // top is no dict), 131,076 are refused; so are 1,000,000, at the 565,538th.
  std::string msg = any_error_of([&] { unpickle(nones_pickle(131075)); });
  EXPECT_EQ(msg, "p.pkl: the pickle holds no dict of tensors");
  msg = any_error_of([&] { unpickle(nones_pickle(131076)); });
  EXPECT_EQ(msg, "p.pkl: the pickle builds more than 131075 objects and references (one per 2 bytes of its 131079 "
                 "bytes, at most 2000000), more than a state dict needs; refused");
  msg = any_error_of([&] { unpickle(nones_pickle(1000000)); });
  EXPECT_NE(msg.find("more than 565537 objects and references (one per 2 bytes of its 1000003 bytes"), std::string::npos)
      << msg;
  // References count too, against the absolute bound: a list given one memoized None again and
  // again (BINGET, 2 bytes a reference) in APPENDS of at most 500,000 (the stack's bound is 2^20).
  // 2 objects and 1,999,998 references are read; one reference more is refused.
  auto list_of_refs = [](size_t refs) {
    std::string p("\x80\x02]Nq\x00" "0", 7);
    for (size_t done = 0; done < refs;) {
      const size_t k = std::min<size_t>(500000, refs - done);
      p += "(";
      for (size_t i = 0; i < k; ++i) p += std::string("h\x00", 2);
      p += "e";
      done += k;
    }
    return p + ".";
  };
  msg = any_error_of([&] { unpickle(list_of_refs(1999998)); });
  EXPECT_EQ(msg, "p.pkl: the pickle holds no dict of tensors");
  msg = any_error_of([&] { unpickle(list_of_refs(1999999)); });
  EXPECT_NE(msg.find("more than 2000000 objects and references (one per 2 bytes of its 4000014 bytes, at most 2000000)"),
            std::string::npos) << msg;
  // Through the binary: a .ckpt of 1,000,000 Nones, exit 3 naming the file.
  write("nones.ckpt", ckpt_with_pickle(nones_pickle(1000000)));
  expect_refused(capped(gen("-p x -m nones.ckpt")), 3,
                 "sd-gen: error: nones.ckpt: the pickle builds more than 565537 objects and references");
}

}  // namespace
