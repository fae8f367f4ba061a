"""Dumps diffusers' DDIM schedule for SD v1.5 (alphas_cumprod, timesteps, and a few DDIM steps on
random data) to tests/data/golden/schedule.json, so test_schedule_ddim.cpp checks our float32 schedule and
step against the reference. Run with the venv of requirements.txt:
    /tmp/refenv/bin/python tests/reference/make_schedule_golden.py
"""
import json
import os

import diffusers
import numpy as np
import torch
from diffusers import DDIMScheduler

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "golden", "schedule.json")

cfg = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
           clip_sample=False, set_alpha_to_one=False, timestep_spacing="leading",
           num_train_timesteps=1000, prediction_type="epsilon")
sched = DDIMScheduler(**cfg)
result = {
    "generator": {"diffusers": diffusers.__version__, "torch": torch.__version__},
    "config": cfg,
    # float32 values written as their bit patterns so the JSON round trip is exact.
    "alphas_cumprod_bits": sched.alphas_cumprod.numpy().view(np.uint32).tolist(),
    "timesteps": {},
    "steps": [],
}
for n in (1, 5, 7, 25, 50):
    sched.set_timesteps(n)
    result["timesteps"][str(n)] = sched.timesteps.tolist()

g = torch.Generator("cpu").manual_seed(1234)
for n in (5, 25):
    sched.set_timesteps(n)
    x = torch.randn(64, generator=g)
    for i, t in enumerate(sched.timesteps):
        eps = torch.randn(64, generator=g)
        out = sched.step(eps, t, x, eta=0.0).prev_sample
        if i in (0, 1, n - 1):
            result["steps"].append({
                "steps": n, "index": i, "t": int(t),
                "x_bits": x.numpy().view(np.uint32).tolist(),
                "eps_bits": eps.numpy().view(np.uint32).tolist(),
                "out_bits": out.numpy().view(np.uint32).tolist(),
            })
        x = out

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(result, f)
print("wrote", OUT)
