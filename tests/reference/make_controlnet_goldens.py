#!/usr/bin/env python3
"""Two tiny ControlNets matching the tiny SD UNet, and the goldens of ControlNet guidance
(tests/data/golden/controlnet.safetensors), from diffusers' ControlNetModel and
StableDiffusionControlNetPipeline (0.42.1; read in pipelines/controlnet/pipeline_controlnet.py,
models/controlnets/controlnet.py, multicontrolnet.py, image_processor.py).

What diffusers does, which sd-gen must replicate (facts read in that code, the runs below depend on them):
 * Control image: control_image_processor = VaeImageProcessor(do_convert_rgb=True, do_normalize=False):
   PIL resize to (width, height) with resample LANCZOS (config "lanczos", reducing_gap None; PIL returns a
   copy when the size already matches), THEN convert to RGB, then x/255 in float32 -> [0, 1], NCHW. No
   [-1, 1] normalisation. (Resizing before the RGB conversion means: PIL resizes mode "P"/"1" pictures with
   NEAREST, and RGBA/LA ones premultiplied, before the alpha is dropped; both committed pictures are RGB.) Without height/width the size is the control image's own, rounded down to a
   multiple of 8, and the pipeline takes height, width from the prepared control image (image.shape[-2:]).
 * The control image is repeat_interleave'd to batch*num_images_per_prompt; with CFG (and not guess mode) it
   is doubled ([uncond; cond] rows get the same image).
 * Per step i of N (timesteps of the scheduler, so N = number of UNet calls for order-1 samplers):
   keep[i] = 1.0 - float(i/N < start or (i+1)/N > end), per ControlNet; the scale passed to the net is
   conditioning_scale * keep[i]. A ControlNet with keep 0 is still run (residuals x 0).
 * ControlNetModel.forward: t_emb/time_embedding as the UNet; h = conv_in(sample) +
   controlnet_cond_embedding(cond) (conv_in(3->c0), SiLU, then per level pair: conv(ci->ci), SiLU,
   conv(ci->ci+1, stride 2), SiLU, and conv_out (c-1 -> block_out_channels[0]), no activation after it);
   then the UNet's down blocks and mid block; residuals = the 12 down-path outputs (conv_in output, each
   resnet/attention output, each downsampler output: the UNet's skip list) each through its 1x1 zero conv
   (controlnet_down_blocks.i), mid = controlnet_mid_block(mid output) (1x1).
   Scaling: normal: every residual and mid x conditioning_scale. guess_mode (and not global_pool_conditions):
   scales = torch.logspace(-1, 0, 13) * conditioning_scale (float32, 0.1 .. 1.0), down residual i x scales[i],
   mid x scales[12] (= scale). global_pool_conditions (config, false for ours and SD1.5 nets; it also forces
   guess_mode on in the pipeline): residuals replaced by their spatial mean (keepdim) — shuffle nets only.
 * Multi ControlNet: residuals of the nets summed (net 0 + net 1 ...), each with its own scale*keep.
 * UNet: down_block_res_samples[j] += residual[j] for the 12 skip tensors AFTER the whole down path (before
   the mid block), and mid-block output += mid residual; the up path then uses the modified skips.
 * CFG: ControlNet gets the CFG batch [uncond; cond] (both context halves, same image). guess_mode with CFG:
   the ControlNet runs on the cond half only (latents scaled by scale_model_input, cond context), and the
   uncond rows get ZERO residuals (torch.cat([zeros_like(d), d])). guess_mode without CFG (guidance <= 1):
   normal single batch, but the logspace scales still apply.
 * controlnet_conditioning_channel_order "rgb" (bgr would flip channels); all ours are rgb.

Files written:
 * tests/data/tiny_controlnet/{a,b}/: ControlNetModel.save_pretrained, fp16 (config.json +
   diffusion_pytorch_model.safetensors). The tiny UNet's block_out_channels (16,32,32,32), layers_per_block 2,
   cross_attention_dim 8, norm groups 8, attention_head_dim 2, down_block_types; hint encoder
   conditioning_embedding_out_channels a: (4,8,8,8), b: (4,4,8,8). Every parameter random (make_goldens.reinit,
   seeds 7001 / 7002), the zero convolutions included (else nothing could be tested), the hint encoder's conv
   weights x 1.85 / 1.7 (see NETS: else the control picture has no visible effect), rounded to fp16.
 * the metadata key orig_names_a of the golden: net a's names in the original ControlNet (lllyasviel cldm /
   A1111) naming, prefix control_model., proven by writing net a under them (fp16, a temporary file the tests
   write again from folder a and this map) and reading it back with diffusers' converter and from_single_file. The map (built below, from the layout): time_embedding.linear_{1,2} ->
   time_embed.{0,2}; conv_in -> input_blocks.0.0; down_blocks/mid_block as the UNet (ldm_names.unet_key);
   controlnet_down_blocks.i -> zero_convs.i.0; controlnet_mid_block -> middle_block_out.0; hint block
   (index = position in the original nn.Sequential, SiLUs at the odd indices have no tensors):
       controlnet_cond_embedding.conv_in   -> input_hint_block.0
       controlnet_cond_embedding.blocks.0  -> input_hint_block.2    (c0 -> c0)
       controlnet_cond_embedding.blocks.1  -> input_hint_block.4    (c0 -> c1, stride 2)
       controlnet_cond_embedding.blocks.2  -> input_hint_block.6
       controlnet_cond_embedding.blocks.3  -> input_hint_block.8    (stride 2)
       controlnet_cond_embedding.blocks.4  -> input_hint_block.10
       controlnet_cond_embedding.blocks.5  -> input_hint_block.12   (stride 2)
       controlnet_cond_embedding.conv_out  -> input_hint_block.14
   i.e. blocks.j -> 2(j+1), conv_out -> 2(len(blocks)+1); stride-2 convs are the odd j (indices 4, 8, 12).
   Proven by diffusers' own convert_controlnet_checkpoint (it hardcodes conv_out = 14) and by
   ControlNetModel.from_single_file: both give back every tensor of folder a.
 * tests/data/images/control_64x96.png (96 wide, 64 high, white lines on black, RGB) and control_48x40.png
   (48 x 40, coloured shapes on grey, RGB; the pipeline resizes it with Lanczos).
 * tests/data/golden/controlnet.safetensors: the model golden (model.*) and the pipeline runs (RUNS); the
   metadata "runs" (JSON) and "how". See the README's row and the "how" text.

Usage: /tmp/curenv/bin/python tests/reference/make_controlnet_goldens.py   (from the repository root)
"""
import json
import os
import re
import shutil
import tempfile
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldm_names  # noqa: E402
from make_goldens import UNET_CONFIG, reinit  # noqa: E402
from make_sampler_goldens import SAMPLERS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
OUT = os.path.join(ROOT, "tests", "data", "tiny_controlnet")
IMAGES = os.path.join(ROOT, "tests", "data", "images")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
PREFIX = "control_model."

# The ControlNet copies the UNet's encoder: its residuals are added to the UNet's skips, so every
# shape-bearing setting must be the tiny UNet's.
SHARED = {k: UNET_CONFIG[k] for k in (
    "in_channels", "flip_sin_to_cos", "freq_shift", "down_block_types", "mid_block_type", "only_cross_attention",
    "block_out_channels", "layers_per_block", "downsample_padding", "mid_block_scale_factor", "act_fn",
    "norm_num_groups", "norm_eps", "cross_attention_dim", "attention_head_dim", "use_linear_projection",
    "upcast_attention")}
# name -> (hint encoder channels, init seed, hint conv gain). b's channels differ so a loader must read the
# shapes, not assume them. The gain: at reinit's N(0, 1/fan_in) the hint encoder's 8 convs with SiLU between
# shrink a sparse [0, 1] picture to ~1e-3 next to their biases (the control picture then changed the images by
# 0.05/255); its conv weights are multiplied by the gain, chosen so the embedding of control_64x96.png differs
# from a black picture's by a std of ~0.5 (conv_in's output std is ~0.9).
NETS = {"a": ((4, 8, 8, 8), 7001, 1.85), "b": ((4, 4, 8, 8), 7002, 1.7)}

PROMPT, NEGATIVE = "a house with a garden, line art", "blurry"
# key, sampler, steps, guidance, seed, batch, controls [(net, image, scale)], start, end, guess_mode
RUNS = [
    ("one", "ddim", 5, 7.5, 51, 2, [("a", "control_64x96.png", 1.0)], 0.0, 1.0, False),
    ("two", "dpmpp_2m", 6, 7.5, 52, 1, [("a", "control_64x96.png", 0.5), ("b", "control_48x40.png", 1.0)],
     0.2, 0.8, False),
    ("guess", "euler_a", 5, 5.0, 53, 1, [("a", "control_64x96.png", 1.0)], 0.0, 1.0, True),
    ("noguide", "euler", 4, 1.0, 54, 1, [("a", "control_64x96.png", 0.5)], 0.0, 1.0, False),
]
WIDTH, HEIGHT = 128, 64  # sd-gen takes multiples of 64; both control pictures are then resized


def orig_key(k, cfg):
    """diffusers ControlNetModel key -> original cldm ControlNet key (without control_model.)."""
    n_blocks = 2 * (len(cfg["conditioning_embedding_out_channels"]) - 1)
    m = re.match(r"controlnet_cond_embedding\.(conv_in|conv_out|blocks\.(\d+))\.(weight|bias)$", k)
    if m:  # the original hint block is one nn.Sequential of conv, SiLU, conv, SiLU, ..., conv
        idx = 0 if m[1] == "conv_in" else 2 * (n_blocks + 1) if m[1] == "conv_out" else 2 * (int(m[2]) + 1)
        return f"input_hint_block.{idx}.{m[3]}"
    m = re.match(r"controlnet_down_blocks\.(\d+)\.(weight|bias)$", k)
    if m:  # zero_convs are nn.Sequential(zero_module(conv)): hence the .0
        return f"zero_convs.{m[1]}.0.{m[2]}"
    if k.startswith("controlnet_mid_block."):
        return "middle_block_out.0." + k[len("controlnet_mid_block."):]
    # The rest is the UNet's encoder; unet_key wants up_block_types only for upsamplers, which a ControlNet lacks.
    return ldm_names.unet_key(k, dict(cfg, up_block_types=UNET_CONFIG["up_block_types"]))


def make_net(name):
    channels, seed, gain = NETS[name]
    net = ControlNetModel(**SHARED, conditioning_embedding_out_channels=channels).eval()
    reinit(net, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # the committed weights are fp16: the reference runs those values in fp32
        e = net.controlnet_cond_embedding
        for conv in (e.conv_in, *e.blocks, e.conv_out):
            conv.weight.mul_(gain)
        for p in net.parameters():
            p.copy_(p.half().float())
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    net.half().save_pretrained(d, safe_serialization=True)
    net.float()
    back = ControlNetModel.from_pretrained(d, local_files_only=True, torch_dtype=torch.float32).state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(back[k], v), k
    return net


def write_orig(net):
    cfg = dict(net.config)
    want = net.state_dict()
    orig = {PREFIX + orig_key(k, cfg): v.detach().half().contiguous().clone() for k, v in want.items()}
    assert len(orig) == len(want), "name collision"
    # Not committed (the GPU machine takes 64 MiB of tree and kit): the tests write it from folder a
    # and the map recorded in the golden's metadata (orig_names_a), which is proven here.
    path = os.path.join(tempfile.mkdtemp(), "a_orig.safetensors")
    save_file(orig, path, metadata={"format": "pt"})
    # The names, proven by diffusers' own converter ...
    back = convert_controlnet_checkpoint(load_file(path), cfg)
    assert set(back) == set(want), sorted(set(back) ^ set(want))[:10]
    for k in want:
        assert torch.equal(back[k].float(), want[k]), k
    # ... and by its single-file loader (model-type detection included), offline, config from folder a.
    sf = ControlNetModel.from_single_file(path, config=os.path.join(OUT, "a"), local_files_only=True,
                                          torch_dtype=torch.float32).state_dict()
    assert set(sf) == set(want)
    for k in want:
        assert torch.equal(sf[k], want[k]), k
    hint = sorted(((k, PREFIX + orig_key(k, cfg)) for k in want if k.startswith("controlnet_cond_embedding.")),
                  key=lambda kv: int(kv[1].split(".")[2]) * 2 + kv[1].endswith("bias"))
    for k, o in hint:
        print(f"  {k:48s} -> {o:40s} {tuple(want[k].shape)}")
    return {k: PREFIX + orig_key(k, cfg) for k in want}


def make_images():
    """Deterministic control pictures: an edge-map-like drawing and a smaller coloured one to be resized."""
    a = Image.new("RGB", (96, 64), (0, 0, 0))
    d = ImageDraw.Draw(a)
    d.rectangle((10, 20, 40, 58), outline=(255, 255, 255), width=1)      # a house: walls, roof, door
    d.line((6, 22, 25, 5, 44, 22), fill=(255, 255, 255), width=1)
    d.rectangle((21, 40, 29, 58), outline=(255, 255, 255), width=1)
    d.ellipse((58, 8, 84, 34), outline=(255, 255, 255), width=2)         # sun
    d.line((0, 60, 95, 60), fill=(255, 255, 255), width=1)               # ground
    d.line((52, 58, 70, 40, 90, 58), fill=(255, 255, 255), width=1)      # hill
    a.save(os.path.join(IMAGES, "control_64x96.png"))
    b = Image.new("RGB", (48, 40), (128, 128, 128))
    d = ImageDraw.Draw(b)
    d.rectangle((4, 4, 20, 30), fill=(230, 40, 30))
    d.ellipse((22, 8, 44, 34), fill=(20, 60, 220), outline=(255, 255, 0), width=2)
    d.line((0, 36, 47, 20), fill=(0, 0, 0), width=3)
    b.save(os.path.join(IMAGES, "control_48x40.png"))


def model_golden(net, tensors):
    """ControlNetModel a's forward, fp32, on seeded inputs; the hint encoder's output via a hook."""
    g = torch.Generator().manual_seed(300)
    sample = torch.randn((2, 4, 8, 12), generator=g)
    context = torch.randn((2, 5, 8), generator=g)
    cond = torch.rand((2, 3, 64, 96), generator=g)
    timesteps = torch.tensor([999.0, 11.5])  # a fractional one: Euler-type samplers pass float timesteps
    seen = {}
    h = net.controlnet_cond_embedding.register_forward_hook(lambda m, i, o: seen.update(emb=o.clone()))
    with torch.no_grad():
        down, mid = net(sample, timesteps, encoder_hidden_states=context, controlnet_cond=cond,
                        conditioning_scale=1.0, return_dict=False)
        gdown, gmid = net(sample, timesteps, encoder_hidden_states=context, controlnet_cond=cond,
                          conditioning_scale=0.8, guess_mode=True, return_dict=False)
    h.remove()
    tensors.update({"model.sample": sample, "model.timesteps": timesteps, "model.context": context,
                    "model.cond": cond, "model.cond_embedding": seen["emb"], "model.mid": mid})
    for i, d in enumerate(down):
        tensors[f"model.down.{i}"] = d
    # guess mode at scale 0.8 differs from the normal outputs only by the logspace factors: keep just those
    scales = torch.logspace(-1, 0, len(down) + 1) * 0.8
    for i, d in enumerate(gdown):
        assert torch.equal(d, down[i] * scales[i]), i
    assert torch.equal(gmid, mid * scales[-1])
    tensors["model.guess_scales_0.8"] = scales.float()
    return len(down)


def run_pipeline(pipe, nets, base_cfg, run, tensors):
    key, sampler, steps, guidance, seed, batch, controls, start, end, guess = run
    cls, extra, _ = SAMPLERS[sampler]
    pipe.scheduler = cls.from_config(dict(base_cfg, **extra))
    multi = len(controls) > 1
    pipe.controlnet = (MultiControlNetModel([nets[c[0]] for c in controls])
                       if multi else nets[controls[0][0]])
    images = [Image.open(os.path.join(IMAGES, c[1])) for c in controls]
    scales = [c[2] for c in controls]
    prepared, noise = [], []
    orig_prepare_image, orig_prepare_latents = pipe.prepare_image, pipe.prepare_latents

    def prepare_image(*a, **kw):  # records the control tensor the nets get (after resize, /255)
        out = orig_prepare_image(*a, **kw)
        prepared.append(out[:1].clone())
        return out

    def prepare_latents(*a, **kw):
        out = orig_prepare_latents(*a, **kw)
        noise.append(out.clone())
        return out
    pipe.prepare_image, pipe.prepare_latents = prepare_image, prepare_latents
    lat = []

    def cb(_p, i, t, kw):
        lat.append(kw["latents"].clone())
        return kw
    out = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=images if multi else images[0],
               controlnet_conditioning_scale=scales if multi else scales[0],
               control_guidance_start=start, control_guidance_end=end, guess_mode=guess,
               height=HEIGHT, width=WIDTH, num_inference_steps=steps, guidance_scale=guidance,
               num_images_per_prompt=batch, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
               callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
    del pipe.prepare_image, pipe.prepare_latents
    # the pipeline's initial latents are torch.randn on the seeded CPU generator x init_noise_sigma
    draw = torch.randn((batch, 4, HEIGHT // 8, WIDTH // 8), generator=torch.Generator("cpu").manual_seed(seed))
    assert torch.equal(noise[0], draw * pipe.scheduler.init_noise_sigma), key
    tensors[f"{key}.noise"] = draw
    tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
    tensors[f"{key}.latents"] = lat[-1].float().contiguous()
    tensors[f"{key}.image_uint8"] = torch.from_numpy(
        np.ascontiguousarray((out.images * 255).round().astype("uint8"))).to(torch.float16)
    for j, p in enumerate(prepared):  # values k/255 exactly: stored as the integers k (fp16 holds them exactly)
        k255 = (p * 255).round()
        assert torch.equal(k255 / 255, p), (key, j)
        # only run two's are stored: they cover both pictures (as is, and Lanczos-resized); main() checks the
        # other runs' equal two's first one
        tensors[f"{key}.control_uint8.{j}"] = k255.to(torch.float16).contiguous()
    n = len(pipe.scheduler.timesteps)
    keep = [[1.0 - float(i / n < start or (i + 1) / n > end) for _ in controls] for i in range(n)]
    print(key, len(lat), "units, keep", [k[0] for k in keep])
    return {"key": key, "prompt": PROMPT, "negative_prompt": NEGATIVE, "batch": batch, "steps": steps,
            "guidance": guidance, "seed": seed, "width": WIDTH, "height": HEIGHT, "sampler": sampler,
            "controls": [{"model": c[0], "image": c[1], "scale": c[2]} for c in controls],
            "control_start": start, "control_end": end, "guess_mode": guess, "units": len(lat),
            "timesteps": [float(t) for t in pipe.scheduler.timesteps], "keep": keep}


def main():
    os.makedirs(OUT, exist_ok=True)
    nets = {name: make_net(name) for name in NETS}
    print("original names of the hint block (net a):")
    name_map = write_orig(nets["a"])
    make_images()
    tensors = {}
    n_res = model_golden(nets["a"], tensors)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        MODEL, controlnet=nets["a"], local_files_only=True, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    base_cfg = pipe.scheduler.config
    runs = [run_pipeline(pipe, nets, base_cfg, r, tensors) for r in RUNS]
    for r in RUNS:
        if r[0] != "two":
            assert torch.equal(tensors.pop(f"{r[0]}.control_uint8.0"), tensors["two.control_uint8.0"]), r[0]
    tensors = {k: v.detach().float().contiguous() if v.dtype == torch.float64 else v.detach().contiguous()
               for k, v in tensors.items()}
    facts = {
        "control_image": "VaeImageProcessor(do_convert_rgb=True, do_normalize=False).preprocess(img, height, width): "
                         "PIL img.resize((width, height), Image.LANCZOS, reducing_gap=None) (a copy when the size "
                         "matches), then convert('RGB'), then float32 x/255 in [0,1], NCHW; repeated to the batch, "
                         "doubled for CFG unless guess_mode",
        "keep": "keep[i] = 1.0 - float(i/N < start or (i+1)/N > end), N = len(scheduler.timesteps); net scale = "
                "conditioning_scale * keep[i]",
        "guess_mode_scales": "torch.logspace(-1, 0, n_residuals + 1) * scale; down residual i x s[i], mid x s[-1]",
        "guess_mode_cfg": "ControlNet on the cond half only (scale_model_input(latents), cond context); the uncond "
                          "rows get zero residuals",
        "residuals": "UNet skip tensor j += down residual j after the whole down path; mid-block output += mid "
                     "residual; Multi: residuals of the nets summed",
        "global_pool_conditions": "false for a and b; true would force guess_mode and average each residual over H,W",
        "n_residuals": n_res,
    }
    save_file(tensors, os.path.join(GOLDEN, "controlnet.safetensors"), metadata={
        "made_by": "tests/reference/make_controlnet_goldens.py", "diffusers": diffusers.__version__,
        "torch": torch.__version__, "runs": json.dumps(runs), "facts": json.dumps(facts),
        "orig_names_a": json.dumps(name_map),
        "how": "model.*: ControlNetModel tests/data/tiny_controlnet/a (fp16 values run in fp32) forward(sample, "
               "timesteps, encoder_hidden_states=context, controlnet_cond=cond, conditioning_scale=1.0); inputs "
               "from Generator().manual_seed(300) in the order sample, context, cond (torch.rand); cond_embedding = "
               "hook on controlnet_cond_embedding; down.i / mid the scaled residuals; all NCHW float32. "
               "model.guess_scales_0.8: the factors guess_mode applies at conditioning_scale 0.8 (checked). "
               "<run>.*: StableDiffusionControlNetPipeline.from_pretrained(tests/data/tiny_sd/diffusers, "
               "controlnet=net or MultiControlNetModel([nets])), float32, scheduler = Class.from_config(its config + "
               "the sampler's settings), Generator('cpu').manual_seed(seed), PIL control images from "
               "tests/data/images; noise [B,4,h,w] = the unscaled torch.randn draw (checked against the "
               "pipeline's latents / init_noise_sigma); latents_per_unit [units,B,4,h,w] from "
               "callback_on_step_end; latents = the final ones (before the VAE); image_uint8 NHWC "
               "(output_type='np' * 255).round(), stored as float16; two.control_uint8.j [1,3,H,W] the j-th "
               "prepared control image x 255 (integers, float16; the other runs' equals two.control_uint8.0)"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
