// The emulator's scheduler: fibers on Boost.Context's fcontext (a context switch is a few register
// saves, far cheaper than ucontext's signal-mask syscalls). A block's threads are fibers run in
// index order (reversed in odd blocks); each runs until it blocks at __syncthreads or at a warp operation. The last arrival
// completes the barrier or collective and carries on, so a kernel without either costs two switches
// per thread. Stacks are allocated once (with a guard page each) and reused by every block.
#include "simt_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "simt_internal.h"

// AddressSanitizer (an SDGEN_SANITIZE build) must be told of every stack switch: otherwise it takes
// a fiber's frames for the scheduler's, and an exception unwinding in a fiber unpoisons the wrong
// stack. asan_start_switch(&save, lo, size) before a jump to the stack [lo, lo+size); after the
// jump lands back, asan_finish_switch(save, ...) (which also reports the stack that was left).
// A null save at the start means the fiber being left is finished.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
static void asan_start_switch(void** save, const void* lo, size_t size) { __sanitizer_start_switch_fiber(save, lo, size); }
static void asan_finish_switch(void* save, const void** lo_old, size_t* size_old) { __sanitizer_finish_switch_fiber(save, lo_old, size_old); }
#else
#define SIMT_ASAN 0
static void asan_start_switch(void**, const void*, size_t) {}
static void asan_finish_switch(void*, const void**, size_t*) {}
#endif

namespace bctx = boost::context::detail;

namespace simt {
namespace detail {

thread_local ThreadCtx* g_thread = nullptr;
thread_local BlockCtx* g_block = nullptr;

namespace {

Stats g_stats;

size_t stack_bytes() {
  static size_t bytes = [] {
    const char* e = std::getenv("SIMT_STACK_KB");
    // Sanitized frames carry red zones: four times the room there.
    size_t kb = e ? (size_t)std::atoi(e) : (SIMT_ASAN ? 256 : 64);
    return (kb < 16 ? 16 : kb) * 1024;
  }();
  return bytes;
}

// One mapping per stack: a guard page below it turns an overflow into a crash, not corruption.
struct StackPool {
  std::vector<char*> stacks;  // each points at the usable area's low end
  char* get(size_t i) {
    while (stacks.size() <= i) {
      size_t page = (size_t)sysconf(_SC_PAGESIZE);
      size_t total = stack_bytes() + page;
      void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw Fault("simt: cannot map a fiber stack");
      mprotect(p, page, PROT_NONE);
      stacks.push_back(static_cast<char*>(p) + page);
    }
    return stacks[i];
  }
};
thread_local StackPool g_stacks;

std::string where(const char* file, int line) {
  std::string f = file ? file : "?";
  size_t slash = f.find_last_of('/');
  if (slash != std::string::npos) f = f.substr(slash + 1);
  return f + ":" + std::to_string(line);
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kSync: return "__syncwarp";
    case WarpOp::kShflIdx: return "__shfl_sync";
    case WarpOp::kShflUp: return "__shfl_up_sync";
    case WarpOp::kShflDown: return "__shfl_down_sync";
    case WarpOp::kShflXor: return "__shfl_xor_sync";
    case WarpOp::kBallot: return "__ballot_sync";
    case WarpOp::kAny: return "__any_sync";
    case WarpOp::kAll: return "__all_sync";
    case WarpOp::kMma: return "mma_m16n8k16";
    case WarpOp::kMmaK8: return "mma_m16n8k8";
    case WarpOp::kMmaBf16: return "mma_m16n8k16_bf16";
  }
  return "?";
}

std::string hex(unsigned m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", m);
  return buf;
}

// Returns control to the scheduler; the fiber resumes here when made ready again.
void yield_to_scheduler() {
  BlockCtx* b = g_block;
  void* save = nullptr;
  asan_start_switch(&save, b->sched_stack_lo, b->sched_stack_size);
  bctx::transfer_t tr = bctx::jump_fcontext(b->sched, nullptr);
  asan_finish_switch(save, &b->sched_stack_lo, &b->sched_stack_size);
  b->sched = tr.fctx;
}

void check_partial_barrier(BlockCtx* b, ThreadCtx* exited) {
  if (b->barrier_count > 0 && b->barrier_count + b->exited == b->nthreads) {
    std::ostringstream os;
    os << "__syncthreads() at " << where(b->barrier_file, b->barrier_line) << " reached by only "
       << b->barrier_count << " of " << b->nthreads << " threads; thread "
       << uint3_str(exited->tid) << " exited without reaching it";
    fault(os.str());
  }
}

// A lane left the kernel: a collective that names it can never complete.
void check_exit_vs_warp(BlockCtx* b, ThreadCtx* t) {
  int base = t->warp * 32;
  for (int l = 0; l < 32 && base + l < b->nthreads; ++l) {
    ThreadCtx& o = b->threads[base + l];
    if (o.state == State::kWarp && (o.mask >> t->lane & 1u)) {
      fault(std::string(op_name(o.op)) + " at " + where(o.file, o.line) + " by thread " +
            uint3_str(o.tid) + " has mask " + hex(o.mask) + " naming lane " +
            std::to_string(t->lane) + ", which has exited");
    }
  }
}

void fiber_entry(bctx::transfer_t tr) {
  BlockCtx* b = g_block;
  asan_finish_switch(nullptr, &b->sched_stack_lo, &b->sched_stack_size);
  b->sched = tr.fctx;
  ThreadCtx* t = g_thread;
  try {
    b->body(b->closure);
    t->state = State::kDone;
    ++b->exited;
    check_exit_vs_warp(b, t);
    check_partial_barrier(b, t);
  } catch (...) {
    t->state = State::kDone;
    b->error = std::current_exception();
    b->error_thread = t;
  }
  asan_start_switch(nullptr, b->sched_stack_lo, b->sched_stack_size);
  bctx::jump_fcontext(b->sched, nullptr);
  std::abort();  // a finished fiber is never resumed
}

[[noreturn]] void deadlock(BlockCtx* b) {
  std::ostringstream os;
  os << "deadlock: no thread can proceed;";
  int shown = 0;
  for (int i = 0; i < b->nthreads && shown < 4; ++i) {
    ThreadCtx& t = b->threads[i];
    if (t.state == State::kWarp) {
      os << " thread " << uint3_str(t.tid) << " waits in " << op_name(t.op) << " at "
         << where(t.file, t.line) << " (mask " << hex(t.mask) << ");";
      ++shown;
    }
  }
  if (b->barrier_count)
    os << " " << b->barrier_count << " threads wait at __syncthreads() at "
       << where(b->barrier_file, b->barrier_line);
  throw Fault(os.str());
}

void run_block(BlockCtx* b) {
  size_t sb = stack_bytes();
  for (int i = 0; i < b->nthreads; ++i) {
    ThreadCtx& t = b->threads[i];
    t.state = State::kReady;
    char* lo = g_stacks.get((size_t)i);
    t.stack_lo = lo;
    t.ctx = bctx::make_fcontext(lo + sb, sb, fiber_entry);
  }
  b->exited = 0;
  b->barrier_count = 0;
  while (b->exited < b->nthreads) {
    bool ran = false;
    for (int idx = 0; idx < b->nthreads; ++idx) {
      int i = b->reverse ? b->nthreads - 1 - idx : idx;
      ThreadCtx& t = b->threads[i];
      if (t.state != State::kReady) continue;
      ran = true;
      t.state = State::kRunning;
      g_thread = &t;
      void* save = nullptr;
      asan_start_switch(&save, t.stack_lo, sb);
      bctx::transfer_t tr = bctx::jump_fcontext(t.ctx, nullptr);
      asan_finish_switch(save, nullptr, nullptr);
      t.ctx = tr.fctx;
      ++g_stats.switches;
      if (b->error) {
        ThreadCtx* et = b->error_thread;
        std::string what;
        try {
          std::rethrow_exception(b->error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
          what = "unknown exception";
        }
        throw Fault("kernel '" + std::string(b->spec->name) + "' block " + uint3_str(b->block_idx) +
                    " thread " + uint3_str(et->tid) + ": " + what);
      }
    }
    if (!ran && b->exited < b->nthreads) {
      try {
        deadlock(b);
      } catch (const Fault& f) {
        throw Fault("kernel '" + std::string(b->spec->name) + "' block " +
                    uint3_str(b->block_idx) + ": " + f.what());
      }
    }
  }
}

void check_limits(const LaunchSpec& s, size_t dyn_limit) {
  auto bad = [&](const std::string& m) {
    throw Fault("kernel '" + std::string(s.name) + "' launch: " + m);
  };
  unsigned long long threads = (unsigned long long)s.block.x * s.block.y * s.block.z;
  if (threads == 0 || s.grid.x == 0 || s.grid.y == 0 || s.grid.z == 0)
    bad("empty grid or block (invalid configuration)");
  if (threads > Limits::kMaxThreadsPerBlock || s.block.x > 1024 || s.block.y > 1024 ||
      s.block.z > Limits::kMaxBlockZ)
    bad("block " + uint3_str(uint3{s.block.x, s.block.y, s.block.z}) + " has " +
        std::to_string(threads) + " threads; sm_75 allows at most 1024 (z at most 64)");
  if (s.grid.y > Limits::kMaxGridYZ || s.grid.z > Limits::kMaxGridYZ || s.grid.x > 0x7fffffffu)
    bad("grid " + uint3_str(uint3{s.grid.x, s.grid.y, s.grid.z}) + " exceeds sm_75's grid limits");
  if (s.dynamic_shared > dyn_limit)
    bad(std::to_string(s.dynamic_shared) + " bytes of dynamic shared memory; sm_75 allows " +
        std::to_string(dyn_limit) +
        (dyn_limit < Limits::kMaxDynamicShared
             ? " without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)"
             : " at most"));
}

}  // namespace

std::string uint3_str(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

std::map<const void*, size_t>& func_dynamic_shared_limits() {
  static std::map<const void*, size_t> m;
  return m;
}

const uint3& thread_idx() { return g_thread->tid; }
const uint3& block_idx() { return g_block->block_idx; }
const dim3& block_dim() { return g_block->spec->block; }
const dim3& grid_dim() { return g_block->spec->grid; }

void fault(const std::string& what) { throw Fault(what); }

void* dynamic_shared(size_t* bytes) {
  *bytes = g_block->spec->dynamic_shared;
  return g_block->dyn_smem;
}

void syncthreads(const char* file, int line) {
  BlockCtx* b = g_block;
  ThreadCtx* t = g_thread;
  if (b->barrier_count > 0 && (b->barrier_line != line || b->barrier_file != file)) {
    fault("__syncthreads() at " + where(file, line) + " while other threads wait at " +
          where(b->barrier_file, b->barrier_line) + " (divergent barrier)");
  }
  b->barrier_file = file;
  b->barrier_line = line;
  ++b->barrier_count;
  if (b->barrier_count + b->exited == b->nthreads) {
    if (b->exited > 0) {
      for (int i = 0; i < b->nthreads; ++i)
        if (b->threads[i].state == State::kDone) check_partial_barrier(b, &b->threads[i]);
    }
    // Everyone is here: release them all and carry on without a switch.
    for (int i = 0; i < b->nthreads; ++i)
      if (b->threads[i].state == State::kBarrier) b->threads[i].state = State::kReady;
    b->barrier_count = 0;
    return;
  }
  t->state = State::kBarrier;
  yield_to_scheduler();
}

void warp_collective(WarpOp op, unsigned mask, const void* src, void* dst, size_t size, int arg,
                     int width, const char* file, int line) {
  BlockCtx* b = g_block;
  ThreadCtx* t = g_thread;
  int base = t->warp * 32;
  int lanes = std::min(32, b->nthreads - base);
  if (!(mask >> t->lane & 1u))
    fault(std::string(op_name(op)) + " at " + where(file, line) + ": mask " + hex(mask) +
          " does not name the calling lane " + std::to_string(t->lane));
  if (lanes < 32 && (mask >> lanes) != 0)
    fault(std::string(op_name(op)) + " at " + where(file, line) + ": mask " + hex(mask) +
          " names lanes beyond the block's last warp (" + std::to_string(lanes) + " lanes)");
  if (width <= 0 || width > 32 || (width & (width - 1)))
    fault(std::string(op_name(op)) + " at " + where(file, line) + ": width " +
          std::to_string(width) + " is not a power of two up to 32");
  bool complete = true;
  for (int l = 0; l < lanes; ++l) {
    if (!(mask >> l & 1u) || l == t->lane) continue;
    ThreadCtx& o = b->threads[base + l];
    if (o.state == State::kDone)
      fault(std::string(op_name(op)) + " at " + where(file, line) + ": mask " + hex(mask) +
            " names lane " + std::to_string(l) + ", which has exited");
    if (o.state == State::kWarp) {
      if (o.mask != mask || o.op != op)
        fault(std::string(op_name(op)) + " at " + where(file, line) + " with mask " + hex(mask) +
              " meets lane " + std::to_string(l) + " waiting in " + op_name(o.op) + " at " +
              where(o.file, o.line) + " with mask " + hex(o.mask));
    } else {
      complete = false;
    }
  }
  t->op = op;
  t->mask = mask;
  t->src = src;
  t->dst = dst;
  t->size = size;
  t->arg = arg;
  t->width = width;
  t->file = file;
  t->line = line;
  if (!complete) {
    t->state = State::kWarp;
    yield_to_scheduler();
    return;  // the last lane to arrive has written our result
  }
  complete_collective(b, base, mask);
  for (int l = 0; l < lanes; ++l)
    if ((mask >> l & 1u) && l != t->lane) b->threads[base + l].state = State::kReady;
}

}  // namespace detail

Stats stats() { return detail::g_stats; }

namespace {
int& arch_setting() {
  static int arch = [] {
    const char* e = std::getenv("SIMT_ARCH");
    if (!e || !*e) return 80;
    const char* digits = std::strncmp(e, "sm_", 3) == 0 ? e + 3 : e;
    char* end = nullptr;
    long v = std::strtol(digits, &end, 10);
    if (*end || v < 75)
      throw Fault("SIMT_ARCH=" + std::string(e) +
                  ": expected an architecture from sm_75 on, e.g. 75 or sm_80");
    return (int)v;
  }();
  return arch;
}
}  // namespace

int emulated_arch() { return arch_setting(); }

void set_emulated_arch(int sm) {
  if (sm < 75)
    throw Fault("set_emulated_arch(" + std::to_string(sm) +
                "): mma.sync needs sm_75 or later, the oldest architecture we ship for");
  arch_setting() = sm;
}

void launch(const LaunchSpec& spec, void (*body)(void*), void* closure) {
  using namespace detail;
  size_t dyn_limit = Limits::kDefaultDynamicShared;
  auto& lim = func_dynamic_shared_limits();
  auto it = lim.find(spec.func);
  if (it != lim.end()) dyn_limit = it->second;
  check_limits(spec, dyn_limit);

  BlockCtx b;
  b.spec = &spec;
  b.body = body;
  b.closure = closure;
  b.nthreads = (int)(spec.block.x * spec.block.y * spec.block.z);
  b.threads.resize((size_t)b.nthreads);
  for (int i = 0; i < b.nthreads; ++i) {
    ThreadCtx& t = b.threads[i];
    t.tid = uint3{(unsigned)i % spec.block.x, (unsigned)i / spec.block.x % spec.block.y,
                  (unsigned)i / (spec.block.x * spec.block.y)};
    t.lane = i % 32;
    t.warp = i / 32;
  }
  // 16-byte aligned like the real allocation; poisoned before each block so that reads before
  // writes show up as NaNs.
  std::vector<float4> smem((spec.dynamic_shared + 15) / 16);
  b.dyn_smem = smem.data();

  BlockCtx* saved_block = g_block;
  ThreadCtx* saved_thread = g_thread;
  g_block = &b;
  ++g_stats.launches;
  try {
    for (unsigned z = 0; z < spec.grid.z; ++z)
      for (unsigned y = 0; y < spec.grid.y; ++y)
        for (unsigned x = 0; x < spec.grid.x; ++x) {
          b.block_idx = uint3{x, y, z};
          b.error = nullptr;
          // Odd blocks run their threads in reverse order: a missing __syncthreads between a
          // shared-memory write and another thread's read then gives wrong results in one
          // direction or the other, instead of always seeing the writes of lower threads.
          b.reverse = ((x + y + z) & 1u) != 0;
          if (!smem.empty()) std::memset(smem.data(), 0xff, smem.size() * sizeof(float4));
          poison_static_shared();
          run_block(&b);
          ++g_stats.blocks;
          g_stats.threads += (uint64_t)b.nthreads;
        }
  } catch (...) {
    g_block = saved_block;
    g_thread = saved_thread;
    throw;
  }
  g_block = saved_block;
  g_thread = saved_thread;
}

}  // namespace simt
