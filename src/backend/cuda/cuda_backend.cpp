// The CUDA backend object, its device memory hooks, and the elementwise and layout ops.
// Compiled only by the sdgen_cuda / sdgen_cuda_emu targets (see cuda_backend.cmake): the core
// library's recursive glob of src/backend/ also lists this file, and there it compiles to nothing.
#if defined(SDGEN_CUDA_BACKEND_TU)
#include "backend/cuda/cuda_backend.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "common/check.h"
#include "backend/cuda/cuda_memory.h"
#include "core/device_memory.h"
#include "kernels.h"
#include "sdgen/error.h"
#include "sdgen/half.h"

namespace sdgen {
namespace cuda {

void check_cudnn_version(size_t version) {
  // The convolution graphs name the device through CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR and leave
  // the operation graph's handle unset, which cuDNN accepts from 9.8 on; an older library would
  // refuse every convolution with a misleading "no engine" instead of this line.
  if (version >= 90800) return;
  const std::string found = std::to_string(version / 10000) + "." + std::to_string(version % 10000 / 100) + "." +
                            std::to_string(version % 100);
  throw_runtime("cuDNN " + found + " is loaded, the CUDA backend needs 9.8 or newer: put a newer libcudnn.so.9 "
                "(e.g. the nvidia-cudnn-cu13 wheel's) first on the library path");
}

CudaBackend::CudaBackend() {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    throw_runtime(std::string("no CUDA device available (") + cudaGetErrorString(e) + ")");
  const int ordinal = cuda_device_ordinal();
  if (ordinal >= count)
    throw_runtime("there is no CUDA device " + std::to_string(ordinal) + ": " + std::to_string(count) +
                  " visible (0.." + std::to_string(count - 1) + "; CUDA_VISIBLE_DEVICES renumbers them)");
#if SDGEN_HAVE_CUDNN
  check_cudnn_version(cudnnGetVersion());  // before anything is made that would need undoing
#endif
  SDGEN_CUDA_CHECK(cudaSetDevice(ordinal));
  // One non-blocking stream for everything: the legacy default stream would synchronize with
  // other streams and cannot be recorded into a graph.
  SDGEN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  set_stream(stream_);
  install_memory_hooks();
  SDGEN_CUBLAS_CHECK(cublasCreate_v2(&cublas_));
  SDGEN_CUBLAS_CHECK(cublasSetStream_v2(cublas_, stream_));
  SDGEN_CUBLAS_CHECK(cublasLtCreate(&cublaslt_));
#if SDGEN_HAVE_CUDNN
  SDGEN_CUDNN_CHECK(cudnnCreate(&cudnn_));
  SDGEN_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
#endif
}

CudaBackend::~CudaBackend() {
  // The plans were made for this backend's handles and end with them (and before them).
  release_linear_plans(cublaslt_);
#if SDGEN_HAVE_CUDNN
  release_conv_plans(cudnn_);
#endif
  if (cublas_) cublasDestroy_v2(cublas_);
  if (cublaslt_) cublasLtDestroy(cublaslt_);
#if SDGEN_HAVE_CUDNN
  if (cudnn_) cudnnDestroy(cudnn_);
#endif
}

bool CudaBackend::supports(Op op, DType) const {
#if SDGEN_HAVE_CUDNN
  (void)op;
  return true;
#else
  return op != Op::kConv2d;  // convolutions go through cuDNN
#endif
}

void CudaBackend::synchronize() { SDGEN_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

Backend::Available CudaBackend::available_memory() {
  // The pool's cached blocks would be taken again, but by size only: hand them back first, so the
  // driver's figure is what a new working set can have.
  synchronize();
  cuda::release_cached_memory();
  size_t free_bytes = 0, total = 0;
  SDGEN_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return {(uint64_t)free_bytes, "free on " + name()};
}

namespace {
// A recorded step: the executable graph, and the pool blocks its replays write.
class CudaGraph final : public Graph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream, int blocks) : exec_(exec), stream_(stream), blocks_(blocks) {}
  ~CudaGraph() override {
    cudaGraphExecDestroy(exec_);
    release_graph_allocations(blocks_);
  }
  void launch() override { SDGEN_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  int blocks_;
};
}  // namespace

namespace {
// A copy to the host in flight: what it will hold, and the host tensor once it has landed.
struct PendingCopy {
  Shape shape;
  DType dtype = DType::F32;
  size_t bytes = 0;
  Tensor host;
  bool landed = false;
};

// The one pinned buffer of the asynchronous downloads (grown to the largest asked; pinned, so the
// copy is asynchronous), the event recorded after its last copy, and that copy.
struct AsyncHost {
  std::mutex mu;
  void* buffer = nullptr;
  size_t capacity = 0;
  cudaEvent_t copied = nullptr;
  std::shared_ptr<PendingCopy> pending;

  // Waits for the pending copy and moves it into its own host tensor, freeing the buffer.
  void land() {
    if (!pending) return;
    SDGEN_CUDA_CHECK(cudaEventSynchronize(copied));
    pending->host = Tensor::empty(pending->shape, pending->dtype, Device::CPU);
    std::memcpy(pending->host.data(), buffer, pending->bytes);
    pending->landed = true;
    pending.reset();
  }
};

AsyncHost& async_host() {
  static AsyncHost* a = new AsyncHost;  // never destroyed, as the pool and the staging buffers
  return *a;
}

class CudaDownload final : public Download {
 public:
  explicit CudaDownload(std::shared_ptr<PendingCopy> c) : c_(std::move(c)) {}
  Tensor wait() override {
    AsyncHost& a = async_host();
    std::lock_guard<std::mutex> lock(a.mu);
    if (!c_->landed) {
      SDGEN_CHECK(a.pending == c_, "an asynchronous download lost its buffer");
      a.land();
    }
    return c_->host;
  }

 private:
  std::shared_ptr<PendingCopy> c_;
};
}  // namespace

std::unique_ptr<Download> CudaBackend::download_async(const Tensor& x) {
  if (x.device() != Device::CUDA || x.nbytes() == 0) return Backend::download_async(x);
  AsyncHost& a = async_host();
  std::lock_guard<std::mutex> lock(a.mu);
  a.land();  // the previous copy, when its caller has not waited for it yet
  if (!a.copied) SDGEN_CUDA_CHECK(cudaEventCreateWithFlags(&a.copied, cudaEventDisableTiming));
  if (x.nbytes() > a.capacity) {
    if (a.buffer) SDGEN_CUDA_CHECK(cudaFreeHost(a.buffer));
    a.buffer = nullptr;
    a.capacity = 0;
    SDGEN_CUDA_CHECK(cudaMallocHost(&a.buffer, x.nbytes()));
    a.capacity = x.nbytes();
  }
  SDGEN_CUDA_CHECK(cudaMemcpyAsync(a.buffer, x.data(), x.nbytes(), cudaMemcpyDeviceToHost, stream_));
  SDGEN_CUDA_CHECK(cudaEventRecord(a.copied, stream_));
  auto c = std::make_shared<PendingCopy>();
  c->shape = x.shape();
  c->dtype = x.dtype();
  c->bytes = x.nbytes();
  a.pending = c;
  return std::make_unique<CudaDownload>(std::move(c));
}

std::unique_ptr<Graph> CudaBackend::capture(const std::function<void()>& body) {
  begin_graph_allocations();
  // Relaxed: the pool may call cudaMalloc while recording (the first time a size is needed).
  SDGEN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
  try {
    body();
  } catch (...) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(stream_, &g);
    if (g) cudaGraphDestroy(g);
    release_graph_allocations(end_graph_allocations());
    throw;
  }
  cudaGraph_t g = nullptr;
  SDGEN_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
  const int blocks = end_graph_allocations();
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  if (e != cudaSuccess) release_graph_allocations(blocks);
  SDGEN_CUDA_CHECK(e);
  return std::make_unique<CudaGraph>(exec, stream_, blocks);
}

std::string CudaBackend::name() const {
#if defined(SDGEN_SIMT)
  return "cuda (SIMT emulator)";
#else
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return "cuda";
  return std::string("cuda (") + p.name + ")";
#endif
}

Tensor CudaBackend::as(const Tensor& t, DType dtype) {
  return !t.defined() || t.dtype() == dtype ? t : cast(t, dtype);
}


Tensor CudaBackend::unary(const Tensor& x, Unary op) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  kernels::unary(x.data(), y.data(), x.numel(), op, x.dtype(), stream_);
  return y;
}

Tensor CudaBackend::geglu(const Tensor& x) {
  Shape s = x.shape();
  int64_t c = s.back() / 2;
  s.back() = c;
  Tensor y = Tensor::empty(s, x.dtype(), Device::CUDA);
  kernels::geglu(x.data(), y.data(), c ? y.numel() / c : 0, c, x.dtype(), stream_);
  return y;
}

Tensor CudaBackend::add(const Tensor& a, const Tensor& b) {
  Tensor y = Tensor::empty(a.shape(), a.dtype(), Device::CUDA);
  Tensor bb = as(b, a.dtype());
  kernels::add(a.data(), bb.data(), y.data(), a.numel(), a.dtype(), stream_);
  return y;
}

Tensor CudaBackend::add_channel(const Tensor& x, const Tensor& b) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  Tensor bb = as(b, x.dtype());
  int64_t n = x.dim(0), c = x.dim(-1);
  int64_t spatial = n && c ? x.numel() / (n * c) : 0;
  kernels::add_channel(x.data(), bb.data(), y.data(), n, spatial, c, x.dtype(), stream_);
  return y;
}

Tensor CudaBackend::scale(const Tensor& x, float s) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  kernels::scale(x.data(), s, y.data(), x.numel(), x.dtype(), stream_);
  return y;
}

Tensor CudaBackend::upsample_nearest2x(const Tensor& x) {
  Tensor y = Tensor::empty({x.dim(0), x.dim(1) * 2, x.dim(2) * 2, x.dim(3)}, x.dtype(),
                           Device::CUDA);
  kernels::upsample_nearest2x(x.data(), y.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3),
                              x.dtype(), stream_);
  return y;
}

Tensor CudaBackend::pad(const Tensor& x, int top, int bottom, int left, int right) {
  Tensor y = Tensor::empty({x.dim(0), x.dim(1) + top + bottom, x.dim(2) + left + right, x.dim(3)}, x.dtype(),
                           Device::CUDA);
  kernels::pad(x.data(), y.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), top, bottom, left, right, x.dtype(),
               stream_);
  return y;
}

Tensor CudaBackend::concat_channels(const Tensor& a, const Tensor& b) {
  Shape s = a.shape();
  int64_t ca = a.dim(-1), cb = b.dim(-1);
  s.back() = ca + cb;
  Tensor y = Tensor::empty(s, a.dtype(), Device::CUDA);
  int64_t rows = ca + cb ? y.numel() / (ca + cb) : 0;
  Tensor bb = as(b, a.dtype());
  kernels::concat_channels(a.data(), bb.data(), y.data(), rows, ca, cb, a.dtype(), stream_);
  return y;
}

Tensor CudaBackend::embedding(const std::vector<int>& ids, int n, const Tensor& table) {
  int64_t count = (int64_t)ids.size(), dim = table.dim(1);
  Tensor y = Tensor::empty({n, n ? count / n : 0, dim}, table.dtype(), Device::CUDA);
  if (count == 0) return y;
  // The ids in a pool buffer of the same byte size: it is reused only by work issued after the
  // gather, on the same stream, so it needs no synchronization.
  static_assert(sizeof(int) == sizeof(float), "ids travel in an fp32-sized buffer");
  Tensor d_ids = Tensor::empty({count}, DType::F32, Device::CUDA);
  device_copy(d_ids.data(), Device::CUDA, ids.data(), Device::CPU, ids.size() * sizeof(int));
  kernels::embedding(d_ids.data_as<int>(), table.data(), y.data(), count, dim, table.dtype(), stream_);
  return y;
}

// A few hundred values, once per step: computed on the host exactly as the CPU backend does
// (diffusers' fp32 order) and uploaded, so both backends agree to the bit.
Tensor CudaBackend::timestep_embedding(const std::vector<float>& t, int dim, DType dtype) {
  int64_t n = (int64_t)t.size(), half = dim / 2;
  std::vector<float> v((size_t)(n * dim), 0.f);
  const float neg_log = (float)(-std::log(10000.0));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < half; ++i) {
      const float exponent = ((float)i * neg_log) / (float)half;
      const float arg = t[b] * std::exp(exponent);
      v[b * dim + i] = std::cos(arg);
      v[b * dim + half + i] = std::sin(arg);
    }
  Tensor host = Tensor::from_floats({n, dim}, v);
  if (is_half_dtype(dtype)) {
    Tensor h = Tensor::empty({n, dim}, dtype);
    uint16_t* p = h.data_as<uint16_t>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = dtype == DType::F16 ? float_to_half_bits(v[i]) : float_to_bf16_bits(v[i]);
    host = h;
  }
  return host.to(Device::CUDA);
}

Tensor CudaBackend::cast(const Tensor& x, DType dtype) {
  Tensor y = Tensor::empty(x.shape(), dtype, Device::CUDA);
  kernels::cast(x.data(), x.dtype(), y.data(), dtype, x.numel(), stream_);
  return y;
}

void CudaBackend::image_to_u8(const Tensor& x, Tensor& out) {
  kernels::image_to_u8(x.data(), x.dtype(), out.data_as<uint8_t>(), x.numel(), stream_);
}

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<cuda::CudaBackend>(); }

}  // namespace sdgen
#endif  // SDGEN_CUDA_BACKEND_TU
