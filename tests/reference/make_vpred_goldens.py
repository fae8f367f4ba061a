#!/usr/bin/env python3
"""Goldens of v-prediction (tests/test_v_prediction.cpp): diffusers' schedulers with
prediction_type="v_prediction", as SD 2.x 768-v's scheduler config sets it.

1. tables.*: each scheduler alone with make_sampler_goldens.py's stand-in UNet, its output now
   read as v: every sampler and schedule, the class's default spacing and "trailing", 3 and 10
   steps (DDIM also with eta 0.7); the latents after every unit and, where the scheduler returns
   it, pred_original_sample (the x0 a preview shows).
2. pipe.*: StableDiffusionPipeline on the tiny model (tests/data/tiny_sd/diffusers) with its
   scheduler config's prediction_type set to "v_prediction" (the tests make that folder variant):
   the latents after every unit and the uint8 images, for samplers whose v handling differs
   (PNDM converts its combined outputs; the σ-space ones scale; DPM-Solver converts to x0).

Output: tests/data/golden/vpred.safetensors. Usage (from the repository root; the current releases,
see requirements-current.txt, plus scipy for LMS):
    /tmp/curenv/bin/python tests/reference/make_vpred_goldens.py
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import StableDiffusionPipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_sampler_goldens as msg  # noqa: E402  (SAMPLERS, BASE, fake_eps)

GOLDEN = os.path.join(msg.GOLDEN, "vpred.safetensors")


def make(name, spacing, karras):
    cls, extra, _ = msg.SAMPLERS[name]
    cfg = dict(msg.BASE, **extra, prediction_type="v_prediction")
    if spacing != "none":
        cfg["timestep_spacing"] = spacing
    if karras:
        cfg["use_karras_sigmas"] = True
    return cls.from_config(cfg)


def table_run(name, spacing, karras, steps, seed, eta):
    s = make(name, spacing, karras)
    s.set_timesteps(steps)
    gen = torch.Generator("cpu").manual_seed(seed)
    x = torch.randn((2, 4, 2, 2), generator=gen) * s.init_noise_sigma
    lat, x0 = [], []
    kw = {"generator": gen} if name in ("euler_a", "dpmpp_2m_sde", "ddim") else {}
    if name == "ddim":
        kw["eta"] = eta
    for t in s.timesteps:
        x_in = s.scale_model_input(x, t)
        out = s.step(msg.fake_eps(x_in, t), t, x, **kw)
        x0.append(getattr(out, "pred_original_sample", None))
        x = out.prev_sample
        lat.append(x.clone())
    r = {"latents": torch.stack(lat).float()}
    if all(p is not None for p in x0):
        r["x0"] = torch.stack(x0).float()
    return r


def tables(tensors):
    runs = []
    for name, (_, _, has_karras) in msg.SAMPLERS.items():
        for karras in ([False, True] if has_karras else [False]):
            for spacing in ["none", "trailing"]:
                for steps in [3, 10]:
                    for eta in ([0.0, 0.7] if name == "ddim" else [0.0]):
                        key = f"{name}|{'karras' if karras else 'default'}|{spacing}|{steps}|{eta:g}"
                        try:
                            r = table_run(name, spacing, karras, steps, 200 + steps, eta)
                        except Exception as e:  # a combination diffusers refuses: not a golden
                            print("skipped", key, type(e).__name__, e)
                            continue
                        if not torch.isfinite(r["latents"]).all():
                            print("skipped", key, "non-finite")
                            continue
                        for k, v in r.items():
                            tensors[f"tables.{key}.{k}"] = v
                        runs.append({"key": key, "sampler": name, "schedule": "karras" if karras else "default",
                                     "spacing": spacing, "steps": steps, "eta": eta, "seed": 200 + steps,
                                     "x0": "x0" in r})
    return runs


PIPE_RUNS = [("pndm", "default"), ("euler", "default"), ("heun", "karras"), ("dpmpp_2m", "karras"),
             ("unipc", "default")]
PIPE = dict(prompt="a lighthouse at dusk", negative_prompt="fog", steps=6, guidance=6.0, width=128, height=64,
            images=2, seed=57)


def pipelines(tensors):
    pipe = StableDiffusionPipeline.from_pretrained(msg.MODEL, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    base_cfg = dict(pipe.scheduler.config, prediction_type="v_prediction")
    runs = []
    for name, schedule in PIPE_RUNS:
        cls, extra, _ = msg.SAMPLERS[name]
        cfg = dict(base_cfg, **extra)
        if schedule == "karras":
            cfg["use_karras_sigmas"] = True
        pipe.scheduler = cls.from_config(cfg)
        assert pipe.scheduler.config.prediction_type == "v_prediction"
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = pipe(prompt=PIPE["prompt"], negative_prompt=PIPE["negative_prompt"], height=PIPE["height"],
                   width=PIPE["width"], num_inference_steps=PIPE["steps"], guidance_scale=PIPE["guidance"],
                   num_images_per_prompt=PIPE["images"], generator=torch.Generator("cpu").manual_seed(PIPE["seed"]),
                   output_type="np", callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        key = f"{name}|{schedule}"
        tensors[f"pipe.{key}.latents_per_unit"] = torch.stack(lat).float()
        tensors[f"pipe.{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8")))
        runs.append({"key": key, "sampler": name, "schedule": schedule, "units": len(lat)})
        print(key, len(lat), "units")
    return runs


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    tensors = {}
    table_runs = tables(tensors)
    pipe_runs = pipelines(tensors)
    save_file(tensors, GOLDEN,
              metadata={"made_by": "tests/reference/make_vpred_goldens.py", "diffusers": diffusers.__version__,
                        "torch": torch.__version__, "tables": json.dumps(table_runs), "pipe": json.dumps(pipe_runs),
                        "call": json.dumps(PIPE),
                        "fake_unet": "v = 0.9*x_in + 0.1*sin(x_in + t/100), x_in = scale_model_input(x, t)",
                        "how": "tables.<key>.latents [units,2,4,2,2] after each step(), x0 its pred_original_sample "
                               "where every step returns one; initial x = randn((2,4,2,2), Generator('cpu')"
                               ".manual_seed(seed)) * init_noise_sigma. pipe.<key>: StableDiffusionPipeline on "
                               "tests/data/tiny_sd/diffusers, scheduler = Class.from_config(its config + "
                               "prediction_type v_prediction + the sampler's settings); latents_per_unit "
                               "[units,B,4,8,16], image_uint8 NHWC [B,64,128,3]"})
    print(len(table_runs), "table runs,", len(pipe_runs), "pipeline runs ->", GOLDEN)
