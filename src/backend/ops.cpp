// The op layer (include/sdgen/ops.h): checks every precondition once, with a message naming the op
// and the shapes, then runs the op on the backend of the inputs' device. Backends trust these
// checks. All tensor inputs of one op must share device and dtype: mixing is a bug of the caller,
// and forbidding it keeps every backend to one code path per dtype.
#include "sdgen/ops.h"

#include <initializer_list>
#include <string>

#include "core/interrupt.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"

namespace sdgen::ops {

namespace {

std::string desc(const char* name, const Tensor& t) {
  if (!t.defined()) return std::string(name) + " (undefined)";
  return std::string(name) + " " + shape_str(t.shape()) + " " + dtype_name(t.dtype()) + " " +
         device_name(t.device());
}

// "op: x [..] fp32 cpu, w [..] fp32 cpu: what"
std::string msg(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> ts,
                const std::string& what) {
  std::string m = std::string(op) + ": ";
  bool first = true;
  for (const auto& [name, t] : ts) {
    m += (first ? "" : ", ") + desc(name, *t);
    first = false;
  }
  return m + ": " + what;
}

// Every defined input on the first one's device and of its dtype.
void check_same(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> ts) {
  const Tensor* first = ts.begin()->second;
  SDGEN_CHECK(first->defined(), msg(op, ts, "first input is undefined"));
  // A stop request is answered between ops on the CPU, where one UNet step of a large batch takes
  // minutes (on CUDA the host only queues work, and the step's end is near).
  if (first->device() == Device::CPU) throw_if_interrupted(interrupt_activity());
  SDGEN_CHECK(first->dtype() != DType::U8, msg(op, ts, "8-bit tensors are finished images, not op inputs"));
  for (const auto& [name, t] : ts) {
    SDGEN_CHECK(t == first || t->defined(), msg(op, ts, std::string(name) + " is undefined"));
    if (!t->defined()) continue;
    SDGEN_CHECK(t->device() == first->device(), msg(op, ts, "inputs on different devices"));
    SDGEN_CHECK(t->dtype() == first->dtype(), msg(op, ts, "inputs of different dtypes"));
  }
}

void check_vec(const char* op, const char* what, const Tensor& v, int64_t n,
               std::initializer_list<std::pair<const char*, const Tensor*>> ts) {
  if (!v.defined()) return;
  SDGEN_CHECK(v.ndim() == 1 && v.dim(0) == n,
              msg(op, ts, std::string(what) + " must be [" + std::to_string(n) + "]"));
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride, int padding, const Tensor& add) {
  auto ts = {std::pair{"x", &x}, std::pair{"w", &w}, std::pair{"bias", &bias}};
  check_same("conv2d", {{"x", &x}, {"w", &w}});
  if (bias.defined()) check_same("conv2d", ts);
  SDGEN_CHECK(x.ndim() == 4 && w.ndim() == 4, msg("conv2d", ts, "x must be NHWC, w OHWI"));
  SDGEN_CHECK(w.dim(1) == w.dim(2) && w.dim(1) > 0, msg("conv2d", ts, "kernel must be square"));
  SDGEN_CHECK(w.dim(3) == x.dim(3) && x.dim(3) > 0 && w.dim(0) > 0,
              msg("conv2d", ts, "input channels of x and w differ"));
  SDGEN_CHECK(stride >= 1 && padding >= 0, msg("conv2d", ts,
                                               "bad stride " + std::to_string(stride) +
                                                   " / padding " + std::to_string(padding)));
  SDGEN_CHECK(x.dim(1) + 2 * padding >= w.dim(1) && x.dim(2) + 2 * padding >= w.dim(1),
              msg("conv2d", ts, "kernel larger than the padded image"));
  check_vec("conv2d", "bias", bias, w.dim(0), ts);
  if (add.defined()) {
    auto ta = {std::pair{"x", &x}, std::pair{"w", &w}, std::pair{"add", &add}};
    check_same("conv2d", ta);
    const Shape out = {x.dim(0), (x.dim(1) + 2 * padding - w.dim(1)) / stride + 1,
                       (x.dim(2) + 2 * padding - w.dim(1)) / stride + 1, w.dim(0)};
    const Shape per_image = {x.dim(0), w.dim(0)};
    SDGEN_CHECK(add.shape() == out || add.shape() == per_image,
                msg("conv2d", ta, "add must be the output's shape " + shape_str(out) + " or [N, Cout]"));
  }
  return backend_for(x.device()).conv2d(x, w, bias, stride, padding, add);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual) {
  auto ts = {std::pair{"x", &x}, std::pair{"w", &w}, std::pair{"bias", &bias}};
  check_same("linear", {{"x", &x}, {"w", &w}});
  if (bias.defined()) check_same("linear", ts);
  SDGEN_CHECK(x.ndim() >= 1 && w.ndim() == 2, msg("linear", ts, "w must be [out, in]"));
  SDGEN_CHECK(x.dim(-1) == w.dim(1) && w.dim(1) > 0 && w.dim(0) > 0,
              msg("linear", ts, "last dim of x must equal w's in"));
  check_vec("linear", "bias", bias, w.dim(0), ts);
  if (residual.defined()) {
    auto tr = {std::pair{"x", &x}, std::pair{"w", &w}, std::pair{"residual", &residual}};
    check_same("linear", tr);
    Shape out = x.shape();
    out.back() = w.dim(0);
    SDGEN_CHECK(residual.shape() == out, msg("linear", tr, "residual must have the output's shape " + shape_str(out)));
  }
  return backend_for(x.device()).linear(x, w, bias, residual);
}

Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                  bool fuse_silu) {
  auto ts = {std::pair{"x", &x}, std::pair{"gamma", &gamma}, std::pair{"beta", &beta}};
  check_same("group_norm", ts);
  SDGEN_CHECK(x.ndim() >= 2, msg("group_norm", ts, "x must be [N, ..., C]"));
  SDGEN_CHECK(groups > 0 && x.dim(-1) > 0 && x.dim(-1) % groups == 0,
              msg("group_norm", ts, std::to_string(groups) + " groups do not divide the channels"));
  check_vec("group_norm", "gamma", gamma, x.dim(-1), ts);
  check_vec("group_norm", "beta", beta, x.dim(-1), ts);
  return backend_for(x.device()).group_norm(x, gamma, beta, groups, eps, fuse_silu);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  auto ts = {std::pair{"x", &x}, std::pair{"gamma", &gamma}, std::pair{"beta", &beta}};
  check_same("layer_norm", ts);
  SDGEN_CHECK(x.ndim() >= 1 && x.dim(-1) > 0, msg("layer_norm", ts, "x has no channels"));
  check_vec("layer_norm", "gamma", gamma, x.dim(-1), ts);
  check_vec("layer_norm", "beta", beta, x.dim(-1), ts);
  return backend_for(x.device()).layer_norm(x, gamma, beta, eps);
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                 bool causal) {
  auto ts = {std::pair{"q", &q}, std::pair{"k", &k}, std::pair{"v", &v}};
  check_same("attention", ts);
  SDGEN_CHECK(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3,
              msg("attention", ts, "q, k, v must be [N, L, H*D]"));
  SDGEN_CHECK(k.shape() == v.shape(), msg("attention", ts, "k and v shapes differ"));
  SDGEN_CHECK(q.dim(0) == k.dim(0), msg("attention", ts, "batch sizes differ"));
  SDGEN_CHECK(q.dim(2) == k.dim(2), msg("attention", ts, "channel counts differ"));
  SDGEN_CHECK(heads > 0 && q.dim(2) > 0 && q.dim(2) % heads == 0,
              msg("attention", ts, std::to_string(heads) + " heads do not divide the channels"));
  return backend_for(q.device()).attention(q, k, v, heads, scale, causal);
}

Tensor softmax(const Tensor& x) {
  check_same("softmax", {{"x", &x}});
  SDGEN_CHECK(x.ndim() >= 1, msg("softmax", {{"x", &x}}, "x must have a last dim"));
  return backend_for(x.device()).softmax(x);
}

Tensor silu(const Tensor& x) {
  check_same("silu", {{"x", &x}});
  return backend_for(x.device()).unary(x, Backend::Unary::kSilu);
}

Tensor quick_gelu(const Tensor& x) {
  check_same("quick_gelu", {{"x", &x}});
  return backend_for(x.device()).unary(x, Backend::Unary::kQuickGelu);
}

Tensor gelu(const Tensor& x) {
  check_same("gelu", {{"x", &x}});
  return backend_for(x.device()).unary(x, Backend::Unary::kGelu);
}

Tensor relu(const Tensor& x) {
  check_same("relu", {{"x", &x}});
  return backend_for(x.device()).unary(x, Backend::Unary::kRelu);
}

Tensor tanh(const Tensor& x) {
  check_same("tanh", {{"x", &x}});
  return backend_for(x.device()).unary(x, Backend::Unary::kTanh);
}

Tensor geglu(const Tensor& x) {
  check_same("geglu", {{"x", &x}});
  SDGEN_CHECK(x.ndim() >= 1 && x.dim(-1) % 2 == 0,
              msg("geglu", {{"x", &x}}, "last dim must be even (value and gate halves)"));
  return backend_for(x.device()).geglu(x);
}

Tensor add(const Tensor& a, const Tensor& b) {
  auto ts = {std::pair{"a", &a}, std::pair{"b", &b}};
  check_same("add", ts);
  SDGEN_CHECK(a.shape() == b.shape(), msg("add", ts, "shapes differ"));
  return backend_for(a.device()).add(a, b);
}

Tensor add_channel(const Tensor& x, const Tensor& b) {
  auto ts = {std::pair{"x", &x}, std::pair{"b", &b}};
  check_same("add_channel", ts);
  SDGEN_CHECK(x.ndim() >= 2 && b.ndim() == 2 && b.dim(0) == x.dim(0) && b.dim(1) == x.dim(-1),
              msg("add_channel", ts, "b must be [N, C] for x [N, ..., C]"));
  return backend_for(x.device()).add_channel(x, b);
}

Tensor scale(const Tensor& x, float s) {
  check_same("scale", {{"x", &x}});
  return backend_for(x.device()).scale(x, s);
}

Tensor upsample_nearest2x(const Tensor& x) {
  check_same("upsample_nearest2x", {{"x", &x}});
  SDGEN_CHECK(x.ndim() == 4, msg("upsample_nearest2x", {{"x", &x}}, "x must be NHWC"));
  return backend_for(x.device()).upsample_nearest2x(x);
}

Tensor pad(const Tensor& x, int top, int bottom, int left, int right) {
  check_same("pad", {{"x", &x}});
  SDGEN_CHECK(x.ndim() == 4, msg("pad", {{"x", &x}}, "x must be NHWC"));
  SDGEN_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0,
              msg("pad", {{"x", &x}}, "negative padding (" + std::to_string(top) + ", " + std::to_string(bottom) +
                                          ", " + std::to_string(left) + ", " + std::to_string(right) + ")"));
  return backend_for(x.device()).pad(x, top, bottom, left, right);
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  auto ts = {std::pair{"a", &a}, std::pair{"b", &b}};
  check_same("concat_channels", ts);
  bool same_lead = a.ndim() == b.ndim() && a.ndim() >= 1;
  for (int i = 0; same_lead && i + 1 < a.ndim(); ++i) same_lead = a.dim(i) == b.dim(i);
  SDGEN_CHECK(same_lead, msg("concat_channels", ts, "all dims but the last must match"));
  return backend_for(a.device()).concat_channels(a, b);
}

Tensor embedding(const std::vector<int>& ids, int n, const Tensor& table, Device device) {
  check_same("embedding", {{"table", &table}});
  SDGEN_CHECK(table.ndim() == 2, msg("embedding", {{"table", &table}}, "table must be [V, D]"));
  SDGEN_CHECK(n > 0 && ids.size() % (size_t)n == 0,
              msg("embedding", {{"table", &table}},
                  std::to_string(ids.size()) + " ids do not split into " + std::to_string(n) +
                      " sequences"));
  for (int id : ids)
    SDGEN_CHECK(id >= 0 && id < table.dim(0), msg("embedding", {{"table", &table}},
                                                  "id " + std::to_string(id) + " out of range"));
  SDGEN_CHECK(table.device() == device,
              msg("embedding", {{"table", &table}},
                  std::string("table is not on the requested device ") + device_name(device)));
  return backend_for(device).embedding(ids, n, table);
}

Tensor timestep_embedding(const std::vector<float>& timesteps, int dim, DType dtype,
                          Device device) {
  SDGEN_CHECK(dim > 0 && dim % 2 == 0,
              "timestep_embedding: dim " + std::to_string(dim) + " must be positive and even");
  return backend_for(device).timestep_embedding(timesteps, dim, dtype);
}

Tensor cast(const Tensor& x, DType dtype) {
  check_same("cast", {{"x", &x}});
  return backend_for(x.device()).cast(x, dtype);
}

void image_to_u8(const Tensor& x, Tensor& out) {
  const Tensor& co = out;
  auto ts = {std::pair{"x", &x}, std::pair{"out", &co}};
  check_same("image_to_u8", {{"x", &x}});
  SDGEN_CHECK(out.defined() && out.dtype() == DType::U8 && out.shape() == x.shape() && out.device() == x.device(),
              msg("image_to_u8", ts, "out must be u8 of x's shape on x's device"));
  backend_for(x.device()).image_to_u8(x, out);
}

Tensor timestep_embedding_at(const Tensor& timesteps, const Tensor& step, int n, int dim, DType dtype) {
  auto ts = {std::pair{"timesteps", &timesteps}, std::pair{"step", &step}};
  check_same("timestep_embedding_at", ts);
  SDGEN_CHECK(timesteps.dtype() == DType::F32 && timesteps.ndim() == 1 && step.ndim() == 1 && step.dim(0) == 1,
              msg("timestep_embedding_at", ts, "timesteps must be [S] fp32, step [1] fp32"));
  SDGEN_CHECK(n >= 0 && dim > 0 && dim % 2 == 0,
              msg("timestep_embedding_at", ts, "n must be >= 0, dim positive and even"));
  return backend_for(timesteps.device()).timestep_embedding_at(timesteps, step, n, dim, dtype);
}

Tensor scale_repeat_batch(const Tensor& x, const Tensor& divisors, const Tensor& step, int times, DType dtype) {
  auto ts = {std::pair{"x", &x}, std::pair{"divisors", &divisors}, std::pair{"step", &step}};
  check_same("scale_repeat_batch", ts);
  SDGEN_CHECK(x.ndim() >= 1 && times >= 1 && x.dtype() == DType::F32,
              msg("scale_repeat_batch", ts, "needs fp32 x with a batch dim and times >= 1"));
  SDGEN_CHECK(divisors.dtype() == DType::F32 && divisors.ndim() == 1 && step.ndim() == 1 && step.dim(0) == 1,
              msg("scale_repeat_batch", ts, "divisors must be [S] fp32, step [1] fp32"));
  return backend_for(x.device()).scale_repeat_batch(x, divisors, step, times, dtype);
}

void sampler_step(Tensor& x, Tensor& state, const Tensor& eps, const Tensor& table, const Tensor& noise,
                  Tensor& step, float guidance) {
  const Tensor &cx = x, &cstep = step, &cstate = state;
  auto ts = {std::pair{"x", &cx},         std::pair{"state", &cstate}, std::pair{"eps", &eps},
             std::pair{"table", &table},  std::pair{"noise", &noise},  std::pair{"step", &cstep}};
  check_same("sampler_step", {{"x", &cx}, {"table", &table}, {"step", &cstep}});
  SDGEN_CHECK(x.dtype() == DType::F32 && x.ndim() >= 1, msg("sampler_step", ts, "the latents are fp32"));
  const int64_t per = x.numel();
  const int K = state.defined() ? (int)state.dim(0) : 0;
  SDGEN_CHECK(!state.defined() || (state.device() == x.device() && state.dtype() == DType::F32 &&
                                   K >= 1 && K <= 4 && state.numel() == K * per),
              msg("sampler_step", ts, "state must be [K <= 4, x's shape...] fp32 on x's device"));
  SDGEN_CHECK(table.dtype() == DType::F32 && table.ndim() == 2 && table.dim(1) == (1 + K) * (3 + K) &&
                  step.ndim() == 1 && step.dim(0) == 1,
              msg("sampler_step", ts, "table must be [S, (1+K)(3+K)] fp32, step [1]"));
  SDGEN_CHECK(!noise.defined() || (noise.device() == x.device() && noise.dtype() == DType::F32 &&
                                   noise.numel() == table.dim(0) * per),
              msg("sampler_step", ts, "noise must be [S, x's shape...] fp32 on x's device"));
  SDGEN_CHECK(eps.defined() && eps.device() == x.device() && eps.ndim() == x.ndim() &&
                  (eps.dim(0) == x.dim(0) || eps.dim(0) == 2 * x.dim(0)) &&
                  eps.numel() == eps.dim(0) * (x.dim(0) ? per / x.dim(0) : 0),
              msg("sampler_step", ts, "eps must be x's shape with B or 2B rows on x's device"));
  backend_for(x.device()).sampler_step(x, state, eps, table, noise, step, guidance);
}

void denoised(const Tensor& x, const Tensor& eps, const Tensor& table, const Tensor& step, float guidance,
              Tensor& out) {
  const Tensor& cout = out;
  auto ts = {std::pair{"x", &x}, std::pair{"eps", &eps}, std::pair{"table", &table}, std::pair{"step", &step},
             std::pair{"out", &cout}};
  check_same("denoised", {{"x", &x}, {"table", &table}, {"step", &step}, {"out", &cout}});
  SDGEN_CHECK(eps.defined() && eps.device() == x.device(), msg("denoised", ts, "eps must be on x's device"));
  SDGEN_CHECK(x.dtype() == DType::F32 && out.dtype() == DType::F32 && out.shape() == x.shape() && x.ndim() >= 1,
              msg("denoised", ts, "x and out must be fp32 of one shape"));
  const int64_t per = x.numel();
  SDGEN_CHECK(eps.ndim() == x.ndim() && (eps.dim(0) == x.dim(0) || eps.dim(0) == 2 * x.dim(0)) &&
                  eps.numel() == eps.dim(0) * (x.dim(0) ? per / x.dim(0) : 0),
              msg("denoised", ts, "eps must be x's shape with B or 2B rows"));
  SDGEN_CHECK(table.dtype() == DType::F32 && table.ndim() == 2 && table.dim(1) == 2 && step.ndim() == 1 &&
                  step.dim(0) == 1 && step.dtype() == DType::F32,
              msg("denoised", ts, "table must be [S, 2] fp32, step [1] fp32"));
  backend_for(x.device()).denoised(x, eps, table, step, guidance, out);
}

Tensor guidance_rescale(const Tensor& eps, float guidance, float phi) {
  auto ts = {std::pair{"eps", &eps}};
  SDGEN_CHECK(eps.defined() && eps.ndim() >= 1 && eps.dim(0) >= 2 && eps.dim(0) % 2 == 0 && eps.numel() >= 2 * eps.dim(0),
              msg("guidance_rescale", ts, "eps must be [2B, ...] with at least 2 values per sample"));
  SDGEN_CHECK(phi >= 0.0f && phi <= 1.0f, msg("guidance_rescale", ts, "phi must be in [0, 1]"));
  return backend_for(eps.device()).guidance_rescale(eps, guidance, phi);
}

Tensor add_scaled_at(const Tensor& base, const Tensor& x, const Tensor& table, const Tensor& step, int64_t column,
                     int64_t row_offset) {
  auto ts = {std::pair{"base", &base}, std::pair{"x", &x}, std::pair{"table", &table}, std::pair{"step", &step}};
  check_same("add_scaled_at", {{"base", &base}, {"x", &x}});
  check_same("add_scaled_at", {{"table", &table}, {"step", &step}});
  SDGEN_CHECK(table.device() == base.device(), msg("add_scaled_at", ts, "table and step must be on base's device"));
  SDGEN_CHECK(base.ndim() >= 1 && x.ndim() == base.ndim() && row_offset >= 0 &&
                  row_offset + x.dim(0) <= base.dim(0) &&
                  x.numel() == x.dim(0) * (base.dim(0) ? base.numel() / base.dim(0) : 0),
              msg("add_scaled_at", ts, "x must be rows [row_offset, row_offset + M) of base's shape, in its dtype"));
  SDGEN_CHECK(table.dtype() == DType::F32 && table.ndim() == 2 && column >= 0 && column < table.dim(1) &&
                  step.ndim() == 1 && step.dim(0) == 1 && step.dtype() == DType::F32,
              msg("add_scaled_at", ts, "table must be [S, C > column] fp32, step [1] fp32"));
  return backend_for(base.device()).add_scaled_at(base, x, table, step, column, row_offset);
}

void inpaint_blend(Tensor& x, const Tensor& mask, const Tensor& x0, const Tensor& noise, const Tensor& table,
                   const Tensor& step) {
  const Tensor& cx = x;
  auto ts = {std::pair{"x", &cx}, std::pair{"mask", &mask}, std::pair{"x0", &x0}, std::pair{"noise", &noise},
             std::pair{"table", &table}, std::pair{"step", &step}};
  check_same("inpaint_blend", ts);
  for (const Tensor* t : {&cx, &mask, &x0, &noise})
    SDGEN_CHECK(t->dtype() == DType::F32 && t->shape() == x.shape(),
                msg("inpaint_blend", ts, "x, mask, x0 and noise must be fp32 of one shape"));
  SDGEN_CHECK(table.dtype() == DType::F32 && table.ndim() == 2 && table.dim(1) == 2 && step.ndim() == 1 &&
                  step.dim(0) == 1 && step.dtype() == DType::F32,
              msg("inpaint_blend", ts, "table must be [S, 2] fp32, step [1] fp32"));
  backend_for(x.device()).inpaint_blend(x, mask, x0, noise, table, step);
}

}  // namespace sdgen::ops
