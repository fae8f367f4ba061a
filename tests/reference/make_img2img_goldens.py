#!/usr/bin/env python3
"""Goldens of img2img (tests/test_samplers.cpp, tests/test_img2img.cpp), from diffusers.

1. tests/data/golden/img2img_tables.safetensors: each scheduler alone as
   StableDiffusionImg2ImgPipeline drives it (get_timesteps: t_start = steps - min(int(steps*strength),
   steps), timesteps[t_start*order:], set_begin_index where the class has it; the initial latents
   scheduler.add_noise(x0, noise, timesteps[:1])), with the stand-in UNet of make_sampler_goldens.py:
   the UNet timesteps, input divisors, the noised initial latents and the latents after every unit.
2. tests/data/golden/img2img.safetensors: StableDiffusionImg2ImgPipeline on the tiny model
   (tests/data/tiny_sd/diffusers), the runs of PIPE_RUNS: strengths 0.3, 0.75 and 1.0, DDIM, Euler
   ancestral and DPM++ 2M, batch 2, non-square sizes, a picture resized by the crop mode, two prompts
   in one call: the latents after every unit and the images.

Usage (from the repository root; diffusers' current release, requirements-current.txt, plus scipy
for LMS):
    /tmp/curenv/bin/python tests/reference/make_img2img_goldens.py
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers

sys.path.insert(0, os.path.dirname(__file__))
from make_sampler_goldens import SAMPLERS, fake_eps, make  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")


def table_run(name, karras, steps, strength, seed, eta):
    s = make(name, "none", karras)
    s.set_timesteps(steps)
    init_timestep = min(int(steps * strength), steps)
    t_start = max(steps - init_timestep, 0)
    timesteps = s.timesteps[t_start * s.order:]
    if hasattr(s, "set_begin_index"):
        s.set_begin_index(t_start * s.order)
    gen = torch.Generator("cpu").manual_seed(seed)
    x0 = torch.randn((2, 4, 2, 2), generator=gen)
    noise = torch.randn((2, 4, 2, 2), generator=gen)
    x = s.add_noise(x0, noise, timesteps[:1].repeat(2))
    init = x.clone()
    ts, div, lat, renoised = [], [], [], []
    kw = {"generator": gen} if name in ("euler_a", "dpmpp_2m_sde", "ddim") else {}
    if name == "ddim":
        kw["eta"] = eta
    for i, t in enumerate(timesteps):
        x_in = s.scale_model_input(x, t)
        ts.append(float(t))
        div.append(float((x[0, 0, 0, 0] / x_in[0, 0, 0, 0]).item()) if x_in[0, 0, 0, 0] != 0 else 1.0)
        x = s.step(fake_eps(x_in, t), t, x, **kw).prev_sample
        lat.append(x.clone())
        # StableDiffusionInpaintPipeline's known region after this step (a 4-channel model)
        proper = x0
        if i < len(timesteps) - 1:
            proper = s.add_noise(x0, noise, torch.tensor([timesteps[i + 1]]))
        renoised.append(proper.clone())
    return t_start, {
        "timesteps": torch.tensor(ts, dtype=torch.float32),
        "divisors": torch.tensor(div, dtype=torch.float32),
        "init_latents": init.float(),
        "latents": torch.stack(lat).float(),
        "renoised": torch.stack(renoised).float(),
    }


def tables():
    tensors, runs = {}, []
    for name, (_, _, has_karras) in SAMPLERS.items():
        for karras in ([False, True] if has_karras else [False]):
            for steps in [3, 10, 25]:
                for strength in [0.3, 0.5, 0.7, 0.75, 1.0]:
                    for eta in ([0.0, 0.7] if name == "ddim" else [0.0]):
                        if int(steps * strength) == 0:
                            continue
                        key = f"{name}|{'karras' if karras else 'default'}|{steps}|{strength:g}|{eta:g}"
                        seed = 200 + steps
                        t_start, r = table_run(name, karras, steps, strength, seed, eta)
                        if not torch.isfinite(r["latents"]).all():
                            print("skipped", key, "non-finite")
                            continue
                        for k, v in r.items():
                            tensors[f"{key}.{k}"] = v
                        runs.append({"key": key, "sampler": name, "schedule": "karras" if karras else "default",
                                     "steps": steps, "strength": strength, "eta": eta, "seed": seed,
                                     "t_start": t_start})
    save_file(tensors, os.path.join(GOLDEN, "img2img_tables.safetensors"),
              metadata={"made_by": "tests/reference/make_img2img_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs),
                        "fake_unet": "eps = 0.9*x_in + 0.1*sin(x_in + t/100), x_in = scale_model_input(x, t)",
                        "draws": "gen = Generator('cpu').manual_seed(seed); x0 = randn((2,4,2,2), gen); "
                                 "noise = randn((2,4,2,2), gen); then the stochastic steps' draws from gen",
                        "latents": "[units, 2, 4, 2, 2] NCHW after each step()",
                        "renoised": "[units, 2, 4, 2, 2]: after each step, add_noise(x0, noise, timesteps[i+1]) "
                                    "as the inpainting pipeline renoises its known region (x0 after the last)"})
    return len(runs)


# The pipeline runs: (key, sampler, strength, steps, guidance, picture, resize, batch, prompts, seed). The
# pictures are tests/data/images/init_128x64.png (128 wide, 64 high: used as it is) and init_101x70.png
# (resized to 64 wide x 128 high by VaeImageProcessor.resize with resize_mode "crop", as sd-gen's
# --resize-mode crop, whose bytes tests/test_image_input.cpp holds equal to it).
PIPE_RUNS = [
    ("ddim_s03", "ddim", 0.3, 10, 7.5, "init_128x64.png", None, 2, ["a red fox in the snow"], 7),
    ("euler_a_s075", "euler_a", 0.75, 8, 5.0, "init_101x70.png", (64, 128), 2, ["a castle on a hill"], 11),
    ("dpmpp_2m_s1", "dpmpp_2m", 1.0, 6, 7.5, "init_128x64.png", None, 1, ["an old oak tree"], 13),
    ("euler_a_s1_prompts", "euler_a", 1.0, 5, 3.0, "init_128x64.png", None, 1,
     ["a lighthouse at dusk", "a bowl of fruit"], 17),
]
NEGATIVE = "blurry"


def pictures():
    y, x = np.mgrid[0:64, 0:128]
    a = np.stack([128 + 100 * np.sin(x / 9.0), 128 + 90 * np.cos(y / 7.0 + x / 13.0),
                  np.where((x - 64) ** 2 + (y - 32) ** 2 < 400, 220, 40)], -1)
    from PIL import Image
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(os.path.join(ROOT, "tests/data/images/init_128x64.png"))
    y, x = np.mgrid[0:70, 0:101]
    b = np.stack([255 * x / 100.0, 255 * y / 69.0, 128 + 120 * np.sin((x + y) / 6.0)], -1)
    Image.fromarray(np.clip(b, 0, 255).astype(np.uint8)).save(os.path.join(ROOT, "tests/data/images/init_101x70.png"))


def pipelines():
    from PIL import Image
    from diffusers import StableDiffusionImg2ImgPipeline
    pictures()
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(MODEL, local_files_only=True, safety_checker=None,
                                                          requires_safety_checker=False)
    base_cfg = pipe.scheduler.config
    tensors, runs = {}, []
    for key, name, strength, steps, guidance, picture, resize, batch, prompts, seed in PIPE_RUNS:
        cls, extra, _ = SAMPLERS[name]
        pipe.scheduler = cls.from_config(dict(base_cfg, **extra))
        image = Image.open(os.path.join(ROOT, "tests/data/images", picture)).convert("RGB")
        if resize:
            image = pipe.image_processor.resize(image, resize[1], resize[0], resize_mode="crop")
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = pipe(prompt=prompts, negative_prompt=[NEGATIVE] * len(prompts), image=image, strength=strength,
                   num_inference_steps=steps, guidance_scale=guidance, num_images_per_prompt=batch,
                   generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                   callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8"))).to(torch.float16)
        w, h = image.size
        runs.append({"key": key, "sampler": name, "strength": strength, "steps": steps, "guidance": guidance,
                     "picture": picture, "resize_mode": "crop" if resize else "just", "width": w, "height": h,
                     "batch": batch, "prompts": prompts, "negative_prompt": NEGATIVE, "seed": seed,
                     "units": len(lat)})
        print(key, len(lat), "units", w, "x", h)
    save_file(tensors, os.path.join(GOLDEN, "img2img.safetensors"),
              metadata={"made_by": "tests/reference/make_img2img_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs),
                        "how": "StableDiffusionImg2ImgPipeline.from_pretrained(tests/data/tiny_sd/diffusers), "
                               "scheduler = Class.from_config(its config + the sampler's settings), prompt list, "
                               "negative prompt per prompt, num_images_per_prompt=batch, "
                               "Generator('cpu').manual_seed(seed); latents_per_unit [units,B,4,h,w] NCHW from "
                               "callback_on_step_end; image_uint8 NHWC (output_type='np' * 255).round(), "
                               "stored as float16"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    if os.environ.get("SKIP_TABLES") is None:
        print(tables(), "table runs")
    if os.environ.get("SKIP_PIPELINES") is None:
        pipelines()
