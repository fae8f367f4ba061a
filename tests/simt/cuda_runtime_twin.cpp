// Host twins of the CUDA runtime calls our code makes, with the real declarations from
// cuda_runtime_api.h (so a signature drift is a compile error). "Device" memory is host memory
// tracked in a table: copies check that the pointers their kind names as device really are, new
// allocations are filled with 0xFF bytes (NaN in fp32 and fp16) so reads of unwritten memory show.
// Streams and events exist as handles; all work is synchronous. Every call is also reported to the
// census (simt_census.h), which counts what a real device would be asked to do. No refusal knob
// (SIMT_REFUSE, simt_refuse.h) acts here: the runtime has no fallback in the backend.
#include <cuda_runtime_api.h>

#include <chrono>
#include <functional>
#include <vector>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "simt_census.h"
#include "simt_internal.h"

namespace {

std::mutex g_mu;
std::map<const char*, size_t>& allocations() {
  static std::map<const char*, size_t> m;
  return m;
}
thread_local cudaError_t g_last = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  g_last = e;
  return e;
}

// True when [p, p+n) lies inside one live device allocation.
bool is_device(const void* p, size_t n) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto& m = allocations();
  const char* c = static_cast<const char*>(p);
  auto it = m.upper_bound(c);
  if (it == m.begin()) return false;
  --it;
  return c >= it->first && c + n <= it->first + it->second;
}

bool copy_ok(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  switch (kind) {
    case cudaMemcpyHostToDevice: return is_device(dst, n) && !is_device(src, n);
    case cudaMemcpyDeviceToHost: return is_device(src, n) && !is_device(dst, n);
    case cudaMemcpyDeviceToDevice: return is_device(src, n) && is_device(dst, n);
    case cudaMemcpyHostToHost: return !is_device(src, n) && !is_device(dst, n);
    default: return true;  // cudaMemcpyDefault: unified addressing decides
  }
}

// Page-locked host allocations (cudaMallocHost): copies from or to them can be asynchronous;
// from pageable memory the runtime stages them and the call returns only when the source is read.
std::map<const char*, size_t>& pinned() {
  static std::map<const char*, size_t> m;
  return m;
}
bool is_pinned(const void* p) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto& m = pinned();
  const char* c = static_cast<const char*>(p);
  auto it = m.upper_bound(c);
  if (it == m.begin()) return false;
  --it;
  return c < it->first + it->second;
}

simt::census::Copy census_kind(cudaMemcpyKind kind, const void* dst, const void* src, size_t n) {
  using simt::census::Copy;
  switch (kind) {
    case cudaMemcpyHostToDevice: return Copy::kH2D;
    case cudaMemcpyDeviceToHost: return Copy::kD2H;
    case cudaMemcpyDeviceToDevice: return Copy::kD2D;
    case cudaMemcpyHostToHost: return Copy::kH2H;
    default: return is_device(src, n) ? (is_device(dst, n) ? Copy::kD2D : Copy::kD2H)
                                      : (is_device(dst, n) ? Copy::kH2D : Copy::kH2H);
  }
}

struct Event {
  std::chrono::steady_clock::time_point t;
};
struct Stream {
  int unused = 0;
};

}  // namespace

cudaError_t cudaMalloc(void** p, size_t size) {
  size_t rounded = (size + 255) / 256 * 256;
  char* m = static_cast<char*>(std::aligned_alloc(256, rounded ? rounded : 256));
  if (!m) return fail(cudaErrorMemoryAllocation);
  // A dry run never reads device memory: leaving it untouched keeps it virtual (a full-size model
  // costs no resident memory).
  if (!simt::census::dry()) std::memset(m, 0xff, rounded);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    allocations()[m] = size;
  }
  simt::census::on_alloc((double)size);
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = allocations().find(static_cast<const char*>(p));
  if (it == allocations().end()) return fail(cudaErrorInvalidValue);
  simt::census::on_free((double)it->second);
  simt::census::on_sync("cudaFree (implicit)");  // cudaFree waits for the device to be idle
  allocations().erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t size) {
  *p = std::malloc(size ? size : 1);
  if (!*p) return fail(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(g_mu);
  pinned()[static_cast<const char*>(*p)] = size ? size : 1;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    pinned().erase(static_cast<const char*>(p));
  }
  simt::census::on_sync("cudaFreeHost (implicit)");
  std::free(p);
  return cudaSuccess;
}

namespace {
cudaError_t copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (!copy_ok(dst, src, n, kind)) return fail(cudaErrorInvalidValue);
  simt::census::on_copy(census_kind(kind, dst, src, n), (double)n);
  if (!simt::census::dry()) std::memmove(dst, src, n);
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (n == 0) return cudaSuccess;
  cudaError_t e = copy(dst, src, n, kind);
  // Synchronous with the host for every kind that touches host memory (the runtime documents
  // device-to-device as possibly asynchronous).
  if (e == cudaSuccess && kind != cudaMemcpyDeviceToDevice) simt::census::on_sync("cudaMemcpy (implicit)");
  return e;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t) {
  if (n == 0) return cudaSuccess;
  if (simt::capturing()) {
    // A graph's copy node reads its source when the graph runs, as on a device.
    if (!copy_ok(dst, src, n, kind)) return fail(cudaErrorInvalidValue);
    simt::capture([=]() { copy(dst, src, n, kind); });
    return cudaSuccess;
  }
  cudaError_t e = copy(dst, src, n, kind);
  const void* host = kind == cudaMemcpyHostToDevice ? src : kind == cudaMemcpyDeviceToHost ? dst : nullptr;
  if (e == cudaSuccess && host && !is_pinned(host))
    simt::census::on_sync("cudaMemcpyAsync with pageable host memory (implicit)");
  return e;
}
cudaError_t cudaMemset(void* p, int value, size_t n) {
  if (n == 0) return cudaSuccess;
  if (!is_device(p, n)) return fail(cudaErrorInvalidValue);
  auto run = [=]() {
    simt::census::on_launch("cudaMemset", simt::replaying(), (double)n, 0);
    if (!simt::census::dry()) std::memset(p, value, n);
  };
  if (simt::capturing()) simt::capture(run);
  else run();
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t) {
  return cudaMemset(p, value, n);
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = reinterpret_cast<cudaStream_t>(new Stream);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete reinterpret_cast<Stream*>(s);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  simt::census::on_sync("cudaStreamSynchronize");
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) {
  simt::census::on_sync("cudaDeviceSynchronize");
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = reinterpret_cast<cudaEvent_t>(new Event{std::chrono::steady_clock::now()});
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  reinterpret_cast<Event*>(e)->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  simt::census::on_sync("cudaEventSynchronize");
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  auto d = reinterpret_cast<Event*>(b)->t - reinterpret_cast<Event*>(a)->t;
  *ms = std::chrono::duration<float, std::milli>(d).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<Event*>(e);
  return cudaSuccess;
}

// The emulated device presents itself as the oldest architecture we build for.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::strncpy(p->name, "sd-gen SIMT emulator (sm_75 limits)", sizeof p->name - 1);
  p->major = 7;
  p->minor = 5;
  p->totalGlobalMem = (size_t)16 << 30;
  p->sharedMemPerBlock = simt::Limits::kDefaultDynamicShared;
  p->sharedMemPerBlockOptin = simt::Limits::kMaxDynamicShared;
  p->sharedMemPerMultiprocessor = 64 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->multiProcessorCount = 1;
  p->maxThreadsPerMultiProcessor = 1024;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int device) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return g_last;
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)p.sharedMemPerBlockOptin; return cudaSuccess;
    case cudaDevAttrWarpSize: *v = 32; return cudaSuccess;
    default: return fail(cudaErrorInvalidValue);
  }
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *total = (size_t)16 << 30;
  size_t used = 0;
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& kv : allocations()) used += kv.second;
  *free_bytes = used < *total ? *total - used : 0;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || (size_t)value > simt::Limits::kMaxDynamicShared) return fail(cudaErrorInvalidValue);
    simt::detail::func_dynamic_shared_limits()[func] = (size_t)value;
  }
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  cudaError_t e = g_last;
  g_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaError (emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error (emulated)";
  }
}

// ---- CUDA graphs: capture records nodes, launch runs them in order ----

struct CUgraph_st {
  std::vector<std::function<void()>> nodes;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> nodes;
};

namespace {
CUgraph_st* g_capture = nullptr;  // the graph being captured (one stream at a time)
bool g_replaying = false;
}  // namespace

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode) {
  // The legacy default stream cannot be captured; a real device answers this way too.
  if (s == nullptr || g_capture) return fail(cudaErrorStreamCaptureUnsupported);
  g_capture = new CUgraph_st;
  simt::census::on_capture();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  if (!g_capture) return fail(cudaErrorIllegalState);
  *graph = g_capture;
  g_capture = nullptr;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t, enum cudaStreamCaptureStatus* status) {
  *status = g_capture ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph) return fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  if (!exec || g_capture) return fail(cudaErrorInvalidValue);
  simt::census::on_graph_launch();
  g_replaying = true;
  struct Reset {
    ~Reset() { g_replaying = false; }
  } reset;
  for (auto& node : exec->nodes) node();
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

namespace simt {
// For tests: is this pointer inside a live emulated device allocation?
bool is_device_pointer(const void* p) { return is_device(p, 1); }
bool capturing() { return g_capture != nullptr; }
bool replaying() { return g_replaying; }
void capture(std::function<void()> node) { g_capture->nodes.push_back(std::move(node)); }
bool setup_refused_in_capture(const char* call) {
  if (!g_capture) return false;
  census::on_setup_in_capture(call);
  return true;
}
}  // namespace simt
