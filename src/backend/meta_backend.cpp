// The meta backend: every op of the interface on tensors that have a shape and a dtype but no
// bytes (Device::Meta). It makes each op's output of the shape the op documents (ops.h checks the
// inputs first, as for any backend) and adds the op's dense FLOPs to this thread's tally
// (core/device_memory.h), while Tensor::empty tallies the bytes each output would take. Running the
// real model code on it (pipeline/dry_run.h) gives the FLOPs, the parameters and the live set of a
// forward pass from the one description of the architecture, the models themselves, in
// milliseconds whatever the batch and size.
//
// Counted: convolutions (2·N·Ho·Wo·Cout·Cin·k²), linear layers (2·rows·in·out) and the two
// attention products (Q·Kᵀ and P·V: 4·N·Lq·Lk·C over all heads; a causal mask is not credited,
// as the kernels compute the full product). Not counted: norms, activations, softmax, adds, casts,
// the sampler: on SD v1.5 they are well under 1% of the total, and MFU is quoted on the dense work.
#include <memory>

#include "core/device_memory.h"
#include "sdgen/backend.h"

namespace sdgen {

namespace {

class MetaBackend final : public Backend {
 public:
  std::string name() const override { return "meta"; }
  Device device() const override { return Device::Meta; }

  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor&, int stride, int padding,
                const Tensor&) override {
    const int64_t k = w.dim(1);
    const Shape out = {x.dim(0), (x.dim(1) + 2 * padding - k) / stride + 1, (x.dim(2) + 2 * padding - k) / stride + 1,
                       w.dim(0)};
    count(2.0 * (double)out[0] * (double)out[1] * (double)out[2] * (double)out[3] * (double)x.dim(3) *
          (double)(k * k));
    return make(out, x.dtype());
  }
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor&, const Tensor&) override {
    Shape out = x.shape();
    out.back() = w.dim(0);
    count(2.0 * (double)(x.numel() / x.dim(-1)) * (double)w.dim(1) * (double)w.dim(0));
    return make(out, x.dtype());
  }
  Tensor group_norm(const Tensor& x, const Tensor&, const Tensor&, int, float, bool) override { return like(x); }
  Tensor layer_norm(const Tensor& x, const Tensor&, const Tensor&, float) override { return like(x); }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor&, int, float, bool) override {
    count(4.0 * (double)q.dim(0) * (double)q.dim(1) * (double)k.dim(1) * (double)q.dim(2));
    return like(q);
  }
  Tensor softmax(const Tensor& x) override { return like(x); }
  Tensor unary(const Tensor& x, Unary) override { return like(x); }
  Tensor geglu(const Tensor& x) override {
    Shape out = x.shape();
    out.back() /= 2;
    return make(out, x.dtype());
  }
  Tensor add(const Tensor& a, const Tensor&) override { return like(a); }
  Tensor add_channel(const Tensor& x, const Tensor&) override { return like(x); }
  Tensor scale(const Tensor& x, float) override { return like(x); }
  Tensor upsample_nearest2x(const Tensor& x) override {
    return make({x.dim(0), 2 * x.dim(1), 2 * x.dim(2), x.dim(3)}, x.dtype());
  }
  Tensor pad(const Tensor& x, int top, int bottom, int left, int right) override {
    return make({x.dim(0), x.dim(1) + top + bottom, x.dim(2) + left + right, x.dim(3)}, x.dtype());
  }
  Tensor concat_channels(const Tensor& a, const Tensor& b) override {
    Shape out = a.shape();
    out.back() += b.dim(-1);
    return make(out, a.dtype());
  }
  Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table) override {
    return make({n, (int64_t)ids.size() / n, table.dim(1)}, table.dtype());
  }
  Tensor timestep_embedding(const std::vector<float>& t, int dim, DType dtype) override {
    return make({(int64_t)t.size(), dim}, dtype);
  }
  Tensor cast(const Tensor& x, DType dtype) override { return make(x.shape(), dtype); }
  void image_to_u8(const Tensor&, Tensor&) override {}

  Tensor timestep_embedding_at(const Tensor&, const Tensor&, int n, int dim, DType dtype) override {
    return make({n, dim}, dtype);
  }
  Tensor scale_repeat_batch(const Tensor& x, const Tensor&, const Tensor&, int times, DType dtype) override {
    Shape out = x.shape();
    out[0] *= times;
    return make(out, dtype);
  }
  void sampler_step(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, Tensor&, float) override {}
  void inpaint_blend(Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) override {}
  void denoised(const Tensor&, const Tensor&, const Tensor&, const Tensor&, float, Tensor&) override {}
  Tensor guidance_rescale(const Tensor& eps, float, float) override {
    Shape out = eps.shape();
    out[0] /= 2;
    return make(out, DType::F32);
  }
  Tensor add_scaled_at(const Tensor& base, const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t) override {
    return like(base);
  }

 private:
  static void count(double flops) { meta_tally().flops += flops; }
  static Tensor make(const Shape& shape, DType dtype) { return Tensor::empty(shape, dtype, Device::Meta); }
  static Tensor like(const Tensor& x) { return make(x.shape(), x.dtype()); }
};

}  // namespace

std::unique_ptr<Backend> make_meta_backend() { return std::make_unique<MetaBackend>(); }

}  // namespace sdgen
