#!/usr/bin/env python3
"""Goldens of the samplers (tests/test_samplers.cpp), from diffusers' schedulers.

1. tests/data/golden/sampler_tables.safetensors: each scheduler alone, driven by a fixed elementwise
   stand-in for the UNet (eps = 0.9*x_in + 0.1*sin(x_in + t/100)), for every sampler, schedule,
   timestep spacing (the config's "leading", "linspace", "trailing", and none: the class default)
   and step count: the UNet timesteps, the input scaling (scale_model_input), init_noise_sigma and
   the latents after every unit. Tests the plans of src/sampler/ without the UNet.
2. tests/data/golden/samplers.safetensors: StableDiffusionPipeline on the tiny model
   (tests/data/tiny_sd/diffusers) with each scheduler made by from_config of the model's own
   scheduler config: the latents after every unit (callback_on_step_end) and the uint8 images.

Usage (from the repository root; diffusers' current release, see requirements-current.txt, plus scipy
for LMS):
    /tmp/curenv/bin/python tests/reference/make_sampler_goldens.py
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, HeunDiscreteScheduler, KDPM2DiscreteScheduler,
                       LMSDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline, UniPCMultistepScheduler)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")

# name -> (class, extra config, offers karras)
SAMPLERS = {
    "ddim": (DDIMScheduler, {}, False),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}, False),
    "lms": (LMSDiscreteScheduler, {}, True),
    "euler": (EulerDiscreteScheduler, {}, True),
    "euler_a": (EulerAncestralDiscreteScheduler, {}, False),
    "heun": (HeunDiscreteScheduler, {}, True),
    "dpm2": (KDPM2DiscreteScheduler, {}, True),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {}, True),
    "dpmpp_2m_sde": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}, True),
    "unipc": (UniPCMultistepScheduler, {}, True),
}
BASE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            steps_offset=1, set_alpha_to_one=False, clip_sample=False, prediction_type="epsilon")


def make(name, spacing, karras, eta=None):
    cls, extra, _ = SAMPLERS[name]
    cfg = dict(BASE, **extra)
    if spacing != "none":
        cfg["timestep_spacing"] = spacing
    if karras:
        cfg["use_karras_sigmas"] = True
    return cls.from_config(cfg)


def fake_eps(x_in, t):
    return 0.9 * x_in + 0.1 * torch.sin(x_in + float(t) / 100.0)


def table_run(name, spacing, karras, steps, seed, eta):
    s = make(name, spacing, karras)
    s.set_timesteps(steps)
    gen = torch.Generator("cpu").manual_seed(seed)
    x = torch.randn((2, 4, 2, 2), generator=gen) * s.init_noise_sigma
    ts, div, lat = [], [], []
    kw = {"generator": gen} if name in ("euler_a", "dpmpp_2m_sde", "ddim") else {}
    if name == "ddim":
        kw["eta"] = eta
    for t in s.timesteps:
        x_in = s.scale_model_input(x, t)
        ts.append(float(t))
        div.append(float((x[0, 0, 0, 0] / x_in[0, 0, 0, 0]).item()) if x_in[0, 0, 0, 0] != 0 else 1.0)
        x = s.step(fake_eps(x_in, t), t, x, **kw).prev_sample
        lat.append(x.clone())
    return {
        "timesteps": torch.tensor(ts, dtype=torch.float32),
        "divisors": torch.tensor(div, dtype=torch.float32),
        "init_sigma": torch.tensor([float(s.init_noise_sigma)], dtype=torch.float32),
        "latents": torch.stack(lat).float(),
    }


def tables():
    tensors, runs = {}, []
    for name, (_, _, has_karras) in SAMPLERS.items():
        for karras in ([False, True] if has_karras else [False]):
            for spacing in ["leading", "linspace", "trailing", "none"]:
                for steps in [1, 3, 10, 25]:
                    for eta in ([0.0, 0.7] if name == "ddim" else [0.0]):
                        key = f"{name}|{'karras' if karras else 'default'}|{spacing}|{steps}|{eta:g}"
                        try:
                            r = table_run(name, spacing, karras, steps, 100 + steps, eta)
                        except Exception as e:  # a combination diffusers refuses: not a golden
                            print("skipped", key, type(e).__name__, e)
                            continue
                        if not torch.isfinite(r["latents"]).all():
                            print("skipped", key, "non-finite")
                            continue
                        for k, v in r.items():
                            tensors[f"{key}.{k}"] = v
                        runs.append({"key": key, "sampler": name, "schedule": "karras" if karras else "default",
                                     "spacing": spacing, "steps": steps, "eta": eta, "seed": 100 + steps})
    save_file(tensors, os.path.join(GOLDEN, "sampler_tables.safetensors"),
              metadata={"made_by": "tests/reference/make_sampler_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs),
                        "fake_unet": "eps = 0.9*x_in + 0.1*sin(x_in + t/100), x_in = scale_model_input(x, t)",
                        "latents": "[units, 2, 4, 2, 2] NCHW after each step(); initial x = "
                                   "randn((2,4,2,2), Generator('cpu').manual_seed(seed)) * init_noise_sigma"})
    return len(runs)


PIPE_RUNS = [
    ("ddim", "default", 0.5), ("pndm", "default", 0), ("lms", "default", 0), ("lms", "karras", 0),
    ("euler", "default", 0), ("euler", "karras", 0), ("euler_a", "default", 0), ("heun", "default", 0),
    ("heun", "karras", 0), ("dpm2", "default", 0), ("dpm2", "karras", 0), ("dpmpp_2m", "default", 0),
    ("dpmpp_2m", "karras", 0), ("dpmpp_2m_sde", "default", 0), ("dpmpp_2m_sde", "karras", 0),
    ("unipc", "default", 0), ("unipc", "karras", 0),
]
PIPE = dict(prompt="a red fox in the snow", negative_prompt="blurry", steps=10, guidance=7.5, width=64,
            height=64, images=2, seed=31)


def pipelines():
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    base_cfg = pipe.scheduler.config
    tensors, runs = {}, []
    for name, schedule, eta in PIPE_RUNS:
        cls, extra, _ = SAMPLERS[name]
        cfg = dict(base_cfg, **extra)
        if schedule == "karras":
            cfg["use_karras_sigmas"] = True
        pipe.scheduler = cls.from_config(cfg)
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        extra_kw = {"eta": eta} if name == "ddim" else {}
        out = pipe(prompt=PIPE["prompt"], negative_prompt=PIPE["negative_prompt"], height=PIPE["height"],
                   width=PIPE["width"], num_inference_steps=PIPE["steps"], guidance_scale=PIPE["guidance"],
                   num_images_per_prompt=PIPE["images"], generator=torch.Generator("cpu").manual_seed(PIPE["seed"]),
                   output_type="np", callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"],
                   **extra_kw)
        key = f"{name}|{schedule}"
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float()
        tensors[f"{key}.timesteps"] = pipe.scheduler.timesteps.clone().float()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(np.ascontiguousarray((out.images * 255).round().astype("uint8")))
        runs.append({"key": key, "sampler": name, "schedule": schedule, "eta": eta, "units": len(lat)})
        print(key, len(lat), "units")
    save_file(tensors, os.path.join(GOLDEN, "samplers.safetensors"),
              metadata={"made_by": "tests/reference/make_sampler_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs), "call": json.dumps(PIPE),
                        "how": "StableDiffusionPipeline.from_pretrained(tests/data/tiny_sd/diffusers) with "
                               "scheduler = Class.from_config(its scheduler config + the sampler's settings); "
                               "latents_per_unit [units,B,4,8,8] NCHW from callback_on_step_end; image_uint8 "
                               "NHWC = (output_type='np' * 255).round()"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(tables(), "table runs") if os.environ.get("SKIP_TABLES") is None else None
    pipelines()
