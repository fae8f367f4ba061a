#!/usr/bin/env python3
"""Goldens of the samplers' denoised estimates (the x0 a live preview shows; tests/test_previews.cpp).

tests/data/golden/previews.safetensors: each scheduler alone, driven by the same elementwise stand-in
for the UNet as make_sampler_goldens.py's tables (eps = 0.9*x_in + 0.1*sin(x_in + t/100)), 10 steps,
each class's default spacing, with and without Karras sigmas where the sampler offers them; for every
unit: the sample the scheduler steps from (x), the model output (eps) and the scheduler's own x0 —
step(...).pred_original_sample where the scheduler returns it (DDIM, Euler, Euler a, LMS, Heun,
DPM2), the return value of convert_model_output inside step (DPM-Solver++ and UniPC predict x0
there), and for PNDM, which forms none, DDIM's formula (x - sqrt(1 - alphas_cumprod[t]) * eps) /
sqrt(alphas_cumprod[t]) over the scheduler's own alphas_cumprod.

Usage: /tmp/curenv/bin/python tests/reference/make_preview_goldens.py   (from the repository root)
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

import diffusers

sys.path.insert(0, os.path.dirname(__file__))
from make_sampler_goldens import SAMPLERS, fake_eps, make  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
STEPS = 10


def run(name, karras, seed):
    s = make(name, "none", karras)
    s.set_timesteps(STEPS)
    gen = torch.Generator("cpu").manual_seed(seed)
    x = torch.randn((2, 4, 2, 2), generator=gen) * s.init_noise_sigma
    kw = {"generator": gen} if name in ("euler_a", "dpmpp_2m_sde") else {}
    converted = []
    if hasattr(s, "convert_model_output"):
        inner = s.convert_model_output

        def spy(*a, **k):
            out = inner(*a, **k)
            converted.append(out.clone())
            return out
        s.convert_model_output = spy
    xs, es, x0s = [], [], []
    for t in s.timesteps:
        x_in = s.scale_model_input(x, t)
        eps = fake_eps(x_in, t)
        out = s.step(eps, t, x, **kw)
        if name == "pndm":
            ac = s.alphas_cumprod[int(t)]
            x0 = (x - (1 - ac) ** 0.5 * eps) / ac ** 0.5
        elif converted:
            x0 = converted.pop()
        else:
            x0 = out.pred_original_sample
        xs.append(x.clone()), es.append(eps.clone()), x0s.append(x0.clone())
        x = out.prev_sample
    return torch.stack(xs).float(), torch.stack(es).float(), torch.stack(x0s).float()


def main():
    tensors, runs = {}, []
    seed = 100
    for name, (_, _, offers_karras) in SAMPLERS.items():
        for karras in ([False, True] if offers_karras else [False]):
            key = name + ("_karras" if karras else "")
            seed += 1
            x, e, x0 = run(name, karras, seed)
            tensors[key + ".x"], tensors[key + ".eps"], tensors[key + ".x0"] = x, e, x0
            runs.append({"key": key, "sampler": name, "karras": karras, "steps": STEPS, "units": x.shape[0]})
            print(key, x.shape[0], "units")
    save_file(tensors, os.path.join(GOLDEN, "previews.safetensors"),
              metadata={"made_by": "tests/reference/make_preview_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs)})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
