#!/usr/bin/env python3
"""Goldens of img2img (tests/test_samplers.cpp, tests/test_img2img.cpp), from diffusers.

1. tests/data/golden/img2img_tables.safetensors: each scheduler alone as
   StableDiffusionImg2ImgPipeline drives it (get_timesteps: t_start = steps - min(int(steps*strength),
   steps), timesteps[t_start*order:], set_begin_index where the class has it; the initial latents
   scheduler.add_noise(x0, noise, timesteps[:1])), with the stand-in UNet of make_sampler_goldens.py:
   the UNet timesteps, input divisors, the noised initial latents and the latents after every unit.
2. tests/data/golden/img2img.safetensors: StableDiffusionImg2ImgPipeline on the tiny model
   (tests/data/tiny_sd/diffusers) — see pipelines() below.

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
    ts, div, lat = [], [], []
    kw = {"generator": gen} if name in ("euler_a", "dpmpp_2m_sde", "ddim") else {}
    if name == "ddim":
        kw["eta"] = eta
    for t in timesteps:
        x_in = s.scale_model_input(x, t)
        ts.append(float(t))
        div.append(float((x[0, 0, 0, 0] / x_in[0, 0, 0, 0]).item()) if x_in[0, 0, 0, 0] != 0 else 1.0)
        x = s.step(fake_eps(x_in, t), t, x, **kw).prev_sample
        lat.append(x.clone())
    return t_start, {
        "timesteps": torch.tensor(ts, dtype=torch.float32),
        "divisors": torch.tensor(div, dtype=torch.float32),
        "init_latents": init.float(),
        "latents": torch.stack(lat).float(),
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
                        "latents": "[units, 2, 4, 2, 2] NCHW after each step()"})
    return len(runs)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    if os.environ.get("SKIP_TABLES") is None:
        print(tables(), "table runs")
    if os.environ.get("SKIP_PIPELINES") is None and "pipelines" in globals():
        pipelines()  # noqa: F821
