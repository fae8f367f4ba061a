// The emulator's per-block and per-thread state, shared by the scheduler and the collectives.
#pragma once
#include <boost/context/detail/fcontext.hpp>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "simt_runtime.h"

namespace simt {
namespace detail {

enum class State : uint8_t { kReady, kRunning, kBarrier, kWarp, kDone };

struct ThreadCtx {
  uint3 tid{0, 0, 0};
  int lane = 0, warp = 0;
  State state = State::kReady;
  boost::context::detail::fcontext_t ctx = nullptr;
  const void* stack_lo = nullptr;  // its fiber stack's low end (for AddressSanitizer's switch notes)
  // The pending warp collective, valid while state == kWarp (and for the completing lane).
  WarpOp op = WarpOp::kSync;
  unsigned mask = 0;
  const void* src = nullptr;
  void* dst = nullptr;
  size_t size = 0;
  int arg = 0, width = 32;
  const char* file = nullptr;
  int line = 0;
};

struct BlockCtx {
  const LaunchSpec* spec = nullptr;
  void (*body)(void*) = nullptr;
  void* closure = nullptr;
  uint3 block_idx{0, 0, 0};
  int nthreads = 0;
  bool reverse = false;  // run threads in descending index order
  std::vector<ThreadCtx> threads;
  void* dyn_smem = nullptr;
  boost::context::detail::fcontext_t sched = nullptr;
  const void* sched_stack_lo = nullptr;  // the scheduler's stack, as AddressSanitizer reports it
  size_t sched_stack_size = 0;
  int exited = 0;
  int barrier_count = 0;
  const char* barrier_file = nullptr;
  int barrier_line = 0;
  std::exception_ptr error;
  ThreadCtx* error_thread = nullptr;
};

std::string uint3_str(uint3 v);
// Kernel address -> dynamic shared memory limit set through cudaFuncSetAttribute.
std::map<const void*, size_t>& func_dynamic_shared_limits();
// Fills with 0xFF the static __shared__ arrays, in this OS thread's storage, of every function that
// has declared any since the last call (all of them at a thread's first call): they are then the
// running block's shared memory, unwritten (simt_static_shared.cpp).
void poison_static_shared();
// Computes every result of the collective whose lanes (warp starting at thread `base`, lanes in
// `mask`) have all arrived.
void complete_collective(BlockCtx* b, int base, unsigned mask);

}  // namespace detail
}  // namespace simt
