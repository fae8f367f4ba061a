#!/usr/bin/env python3
"""Goldens of --precision bf16 (tests/test_pipeline.cpp, Bf16*): diffusers' StableDiffusionPipeline on
the tiny model (tests/data/tiny_sd/diffusers) loaded with torch_dtype=torch.bfloat16, run on the CPU,
for the pipeline goldens' run0 and run1 (make_goldens.py's PIPE_RUNS: same prompts, steps, guidance,
seeds, size, DDIM as the folder's scheduler, eta 0).

The initial noise: diffusers draws it in the latents' dtype (randn_tensor(..., dtype=bf16)); the script
checks that torch's bf16 draw is its fp32 draw of the same generator rounded to bf16, so diffusers'
bf16 run starts from sd-gen's noise (fp32 in every precision) up to that one rounding. Everything is
diffusers' bf16 path as a user gets it: bf16 weights, activations, scheduler latents and VAE.

Saved (tests/data/golden/bf16.safetensors, ~50 KB): per run, the uint8 images (numpy_to_pil's
(x*255).round()) and the final latents, plus the reference's own spread: how far its bf16 images
are from diffusers' fp32 images of the same run (pipeline.safetensors), in the metadata as JSON
(share of channels within 0/1/2/4/8 levels, worst). That spread is what the C++ pixel rule is
derived from.

Usage (from the repository root; the current releases, see requirements-current.txt):
    /tmp/curenv/bin/python tests/reference/make_bf16_goldens.py
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import StableDiffusionPipeline

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
MODEL = os.path.join(DATA, "tiny_sd", "diffusers")
GOLDEN = os.path.join(DATA, "golden")

# make_goldens.py's PIPE_RUNS[0:2]
RUNS = [
    dict(name="run0", prompt="a photo of a cat", negative_prompt=None, steps=5, guidance=7.5, height=64,
         width=64, num_images_per_prompt=2, seed=42),
    dict(name="run1", prompt="a red house by the lake, oil painting", negative_prompt="blurry, low quality",
         steps=7, guidance=7.5, height=64, width=64, num_images_per_prompt=2, seed=1234),
]
LEVELS = (0, 1, 2, 4, 8)


def spread(a, b):
    d = (a.astype(np.int32) - b.astype(np.int32)).__abs__().ravel()
    out = {f"within{k}": float((d <= k).mean()) for k in LEVELS}
    out["worst"] = int(d.max())
    return out


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    fp32_golden = load_file(os.path.join(GOLDEN, "pipeline.safetensors"))
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False, torch_dtype=torch.bfloat16)
    pipe.to("cpu")
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16
    tensors, meta = {}, {}
    for r in RUNS:
        n = r["name"]
        B = r["num_images_per_prompt"]
        shape = (B, 4, r["height"] // 8, r["width"] // 8)
        noise32 = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(r["seed"]))
        assert torch.equal(noise32, fp32_golden[f"{n}.noise"]), "fp32 noise differs from pipeline.safetensors"
        own = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(r["seed"]), dtype=torch.bfloat16)
        assert torch.equal(own, noise32.bfloat16()), "torch's bf16 randn is not its fp32 randn rounded"
        steps = []

        def cb(_p, i, t, kw):
            steps.append(kw["latents"].clone())
            return kw
        out = pipe(prompt=r["prompt"], negative_prompt=r["negative_prompt"], height=r["height"], width=r["width"],
                   num_inference_steps=r["steps"], guidance_scale=r["guidance"], num_images_per_prompt=B,
                   generator=torch.Generator("cpu").manual_seed(r["seed"]),
                   output_type="np", callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        latents = steps[-1]  # bf16 [B,4,h,w], scaled (the VAE's input is / scaling_factor)
        assert latents.dtype == torch.bfloat16
        image = out.images  # float32 [B,H,W,3] in [0,1]
        u8 = (image * 255).round().astype("uint8")
        tensors[f"{n}.image_uint8"] = torch.from_numpy(np.ascontiguousarray(u8))
        tensors[f"{n}.latents_final"] = latents.float().contiguous()
        ref32 = fp32_golden[f"{n}.image_uint8"].numpy()
        meta[n] = {"vs_fp32_image": spread(u8, ref32),
                   "latents_vs_fp32_max_abs": float((latents.float() - fp32_golden[f"{n}.latents_final"]).abs().max()),
                   "latents_fp32_max_abs": float(fp32_golden[f"{n}.latents_final"].abs().max())}
        print(n, json.dumps(meta[n]))
    how = ("diffusers StableDiffusionPipeline.from_pretrained(tiny_sd/diffusers, torch_dtype=torch.bfloat16) "
           "on the CPU, run0/run1 of make_goldens.py (its own bf16 noise: torch's fp32 randn rounded), "
           "output_type='np', final latents from callback_on_step_end; "
           f"torch {torch.__version__}, diffusers {diffusers.__version__}")
    save_file(tensors, os.path.join(GOLDEN, "bf16.safetensors"),
              metadata={"how": how, "spread": json.dumps(meta)})


if __name__ == "__main__":
    main()
