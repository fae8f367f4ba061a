// The CPU backend class: routes each Backend op to its family's function in src/backend/cpu/ and
// handles fp16 uniformly: fp16 inputs are widened to fp32, the op computes in fp32 and the result
// is rounded back to the first input's dtype. Simple and exact to the fp32 math, so the pipeline's
// fp16 mode runs on the CPU too. The exceptions: the fast paths take conv and linear weights as
// stored and widen fp16 ones panel by panel inside the GEMM, because widening a whole weight per
// call would keep an fp32 copy of it alive next to the fp16 one, and redo that for every call; and
// the fast conv takes and returns fp16 activations as stored, converting chunk by chunk (conv.cpp).
#include "backend/cpu/cpu_backend.h"

#include "sdgen/error.h"

namespace sdgen {

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(bool plain) : plain_(plain) {}

  std::string name() const override { return plain_ ? "cpu-plain" : "cpu"; }
  Device device() const override { return Device::CPU; }

  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride,
                int padding, const Tensor& add) override {
    Tensor y = cpu::conv2d(stored(x), stored(w), f32(bias), stride, padding, plain_);
    if (add.defined())  // in fp32, then one rounding to x's dtype
      y = add.ndim() == 2 ? cpu::add_channel(f32(y), f32(add), plain_) : cpu::add(f32(y), f32(add), plain_);
    return out(y, x);
  }
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual) override {
    if (!plain_ && w.dtype() == DType::BF16 && cpu::bf16_gemm_available())  // bf16 x as stored
      return out(cpu::linear_bf16(host(x), w, f32(bias), f32(residual)), x);
    return out(cpu::linear(f32(x), stored(w), f32(bias), f32(residual), plain_), x);
  }
  Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                    bool fuse_silu) override {
    return out(cpu::group_norm(f32(x), f32(gamma), f32(beta), groups, eps, fuse_silu, plain_), x);
  }
  Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) override {
    return out(cpu::layer_norm(f32(x), f32(gamma), f32(beta), eps, plain_), x);
  }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override {
    // bf16 with oneDNN: q, k, v as stored, into bf16 GEMMs (attention.cpp).
    if (!plain_ && q.dtype() == DType::BF16 && k.dtype() == DType::BF16 && v.dtype() == DType::BF16 &&
        cpu::bf16_gemm_available())
      return out(cpu::attention_bf16(host(q), host(k), host(v), heads, scale, causal), q);
    return out(cpu::attention(f32(q), f32(k), f32(v), heads, scale, causal, plain_), q);
  }
  Tensor softmax(const Tensor& x) override { return out(cpu::softmax(f32(x), plain_), x); }
  Tensor unary(const Tensor& x, Unary op) override {
    return out(cpu::unary(f32(x), op, plain_), x);
  }
  Tensor geglu(const Tensor& x) override { return out(cpu::geglu(f32(x), plain_), x); }
  Tensor add(const Tensor& a, const Tensor& b) override {
    return out(cpu::add(f32(a), f32(b), plain_), a);
  }
  Tensor add_channel(const Tensor& x, const Tensor& b) override {
    return out(cpu::add_channel(f32(x), f32(b), plain_), x);
  }
  Tensor scale(const Tensor& x, float s) override { return out(cpu::scale(f32(x), s, plain_), x); }
  Tensor upsample_nearest2x(const Tensor& x) override {
    return cpu::upsample_nearest2x(host(x), plain_);
  }
  Tensor pad(const Tensor& x, int top, int bottom, int left, int right) override {
    return cpu::pad(host(x), top, bottom, left, right, plain_);
  }
  Tensor concat_channels(const Tensor& a, const Tensor& b) override {
    return cpu::concat_channels(host(a), host(b), plain_);
  }
  Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table) override {
    return cpu::embedding(ids, n, host(table));
  }
  Tensor timestep_embedding(const std::vector<float>& t, int dim, DType dtype) override {
    Tensor y = cpu::timestep_embedding(t, dim);
    return dtype == DType::F32 ? y : cpu::cast(y, dtype, plain_);
  }
  Tensor cast(const Tensor& x, DType dtype) override { return cpu::cast(host(x), dtype, plain_); }
  void image_to_u8(const Tensor& x, Tensor& out) override { cpu::image_to_u8(f32(x), out); }

  Tensor timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim,
                               DType dtype) override {
    Tensor y = cpu::timestep_embedding_at(host(timesteps), host(step), n, dim);
    return dtype == DType::F32 ? y : cpu::cast(y, dtype, plain_);
  }
  Tensor scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times,
                            DType dtype) override {
    Tensor y = cpu::scale_repeat_batch(host(x), host(divisors), host(step), times);
    return dtype == DType::F32 ? y : cpu::cast(y, dtype, plain_);
  }
  void sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table, const Tensor& noise,
                    Tensor& step, float guidance) override {
    cpu::sampler_step(x, state, f32(eps), host(table), host(noise), step, guidance);
  }
  void inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise, const Tensor& table,
                     const Tensor& step) override {
    cpu::inpaint_blend(x, mask, x0, noise, table, step);
  }
  void denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step, float guidance,
                Tensor& out) override {
    cpu::denoised(x, f32(eps), host(table), host(step), guidance, out);
  }
  Tensor guidance_rescale(const Tensor& eps, float guidance, float phi) override {
    return cpu::guidance_rescale(f32(eps), guidance, phi);
  }
  Tensor add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step, int64_t column,
                       int64_t row_offset) override {
    return out(cpu::add_scaled_at(f32(base), f32(x), host(table), host(step), column, row_offset), base);
  }

 private:
  static const Tensor& host(const Tensor& t) {
    SDGEN_CHECK(!t.defined() || t.device() == Device::CPU,
                std::string("CPU backend given a ") + device_name(t.device()) + " tensor");
    return t;
  }
  // The fp32 view of an input (a widened copy for fp16); undefined stays undefined.
  Tensor f32(const Tensor& t) const {
    if (!host(t).defined() || t.dtype() == DType::F32) return t;
    return cpu::cast(t, DType::F32, plain_);
  }
  // An input the fast path takes as stored (conv2d's input and weight, linear's weight); fp32 for
  // the plain path.
  Tensor stored(const Tensor& t) const { return plain_ ? f32(t) : host(t); }
  // The result (fp32, or already in its dtype) in the dtype of `like`.
  Tensor out(const Tensor& y, const Tensor& like) const {
    return y.dtype() == like.dtype() ? y : cpu::cast(y, like.dtype(), plain_);
  }

  bool plain_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(bool plain) {
  static const bool configured = (cpu::configure_blas(), true);
  (void)configured;
  return std::make_unique<CpuBackend>(plain);
}

}  // namespace sdgen
