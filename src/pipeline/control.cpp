// ControlNets in the denoising loop (diffusers' StableDiffusionControlNetPipeline and its Multi form):
// the control images encoded once per generation by each net's hint encoder (one row, copied), each net's context keys
// and values prepared once, and a table of the units' conditioning scales on the device, so that the
// recorded step reads no host value. In the step each net runs on the UNet's input (guess mode with
// guidance: the conditional rows alone) and its residuals are added to the UNet's skips at the
// unit's scale (ops::add_scaled_at).
#include <algorithm>

#include "io/controlnet_file.h"
#include "io/image_resize.h"
#include "pipeline/loop_state.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"
#include "unet/controlnet.h"

namespace sdgen {

const ControlNet& Pipeline::controlnet(const std::string& path) {
  auto it = controlnets_.find(path);
  if (it != controlnets_.end()) return *it->second;
  ControlNetFile f = open_controlnet_file(path, checkpoint_->config());
  if (log_) log_("ControlNet: " + f.name);
  auto net = std::make_unique<ControlNet>(*f.weights, f.config, precision_, device_);
  return *controlnets_.emplace(path, std::move(net)).first->second;
}

std::vector<const ControlNet*> Pipeline::control_nets(const GenerateParams& p) {
  std::vector<const ControlNet*> nets;
  for (const ControlParams& c : p.controls) {
    if (!c.image) throw_usage("ControlNet " + c.model + " has no control image");
    nets.push_back(&controlnet(c.model));
  }
  return nets;
}

bool Pipeline::control_cond_only(bool guided) const { return guided && loop_->key.guess_mode; }

namespace {

// The control image as the net reads it: resized to width × height (Lanczos) when it differs, values
// x/255 in [0, 1], NHWC [1, height, width, 3].
Tensor control_image(const RgbImage& picture, int width, int height) {
  const RgbImage sized =
      picture.width == width && picture.height == height ? picture : resize_lanczos(picture, width, height);
  std::vector<float> v(sized.pixels.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = (float)sized.pixels[i] / 255.0f;
  return Tensor::from_floats({1, height, width, 3}, v);
}

// The hint embedding of one control image for `rows` UNet rows: encoded once and copied, where
// diffusers encodes the repeated image (the same values per row; 1/rows of the work and memory).
Tensor hint_rows(const ControlNet& net, const RgbImage& picture, int width, int height, int rows) {
  const Tensor one = net.embed_condition(control_image(picture, width, height));
  if (rows == 1) return one;
  Shape s = one.shape();
  s[0] = rows;
  Tensor all = Tensor::empty(s, one.dtype(), one.device());
  for (int r = 0; r < rows; ++r) all.slice0(r, r + 1).copy_from(one);
  return all;
}

}  // namespace

void Pipeline::set_control(const GenerateParams& p, const SamplerPlan& plan, const TextContext& text, bool guided,
                           bool refill) {
  LoopState& st = *loop_;
  const std::vector<const ControlNet*>& nets = st.key.controls;
  if (nets.empty()) return;
  // start == end is allowed (A1111's sliders allow it): the nets then guide no unit.
  if (!(p.control_start >= 0 && p.control_start <= p.control_end && p.control_end <= 1))
    throw_usage("control guidance start " + std::to_string(p.control_start) + " and end " +
                std::to_string(p.control_end) + ": need 0 <= start <= end <= 1");
  const bool cond_only = control_cond_only(guided);
  const Tensor& context = text.context;
  const int rows = (int)context.dim(0), crows = cond_only ? rows / 2 : rows;
  const Tensor ctx = cond_only ? context.slice0(rows / 2, rows) : context;
  // SDXL: the nets' rows' pooled text and size ids (guess mode: the conditional half, as diffusers
  // passes add_text_embeds.chunk(2)[1] and add_time_ids.chunk(2)[1]).
  const bool added = text.pooled.defined();
  const Tensor pooled = !added ? Tensor() : cond_only ? text.pooled.slice0(rows / 2, rows) : text.pooled;
  const std::vector<float> time_ids =
      !added || !cond_only ? text.time_ids
                           : std::vector<float>(text.time_ids.begin() + (ptrdiff_t)(text.time_ids.size() / 2),
                                                text.time_ids.end());
  std::vector<float> scales;
  const size_t down = nets[0]->down_residuals();
  for (size_t k = 0; k < nets.size(); ++k) {
    SDGEN_CHECK(nets[k]->down_residuals() == down, "ControlNets with different residual counts");
    scales.push_back(p.controls[k].scale);
  }
  const Tensor table = Tensor::from_floats({plan.units, (int64_t)(nets.size() * (down + 1))},
                                           control_scales(scales, down, plan.units, p.control_start, p.control_end,
                                                          p.guess_mode));
  if (!refill) {
    st.control_hint.clear();
    st.control_cross.clear();
  }
  for (size_t k = 0; k < nets.size(); ++k) {
    const Tensor hint = hint_rows(*nets[k], *p.controls[k].image, p.width, p.height, crows);
    CrossContext cross = nets[k]->prepare_context(ctx);
    if (added) cross.added = nets[k]->prepare_added(pooled, time_ids);
    if (!refill) {
      st.control_hint.push_back(hint);
      st.control_cross.push_back(std::move(cross));
      continue;
    }
    st.control_hint[k].copy_from(hint);
    st.control_cross[k].hidden.copy_from(cross.hidden);
    if (added) st.control_cross[k].added.copy_from(cross.added);
    for (const auto& [attention, kv] : cross.kv) {
      st.control_cross[k].kv.at(attention).first.copy_from(kv.first);
      st.control_cross[k].kv.at(attention).second.copy_from(kv.second);
    }
  }
  if (refill)
    st.control_scales.copy_from(table);
  else
    st.control_scales = table.to(device_);
}

}  // namespace sdgen
