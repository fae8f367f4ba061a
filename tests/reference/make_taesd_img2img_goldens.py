#!/usr/bin/env python3
"""Goldens of img2img and inpainting encoded by the tiny autoencoder (tests/test_taesd_img2img.cpp).

diffusers' StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline on the tiny model
(tests/data/tiny_sd/diffusers) with vae=AutoencoderTiny (tests/data/tiny_taesd, made by
make_taesd_goldens.py, loaded in float32): AutoencoderTiny.encode returns latents, not a
distribution, so retrieve_latents draws nothing from the generator — the start noise is its first
draw. Runs: img2img DDIM at strength 0.6 (batch 2, 128x64 from init_128x64.png); inpainting (a
regular 4-channel model) Euler a at 0.75 with mask_128x64.png. The latents after every unit and the
uint8 images, into tests/data/golden/taesd_img2img.safetensors. And the hires fix's lanczos pass with
TAESD decoding and encoding (hires(), composed as make_hires_goldens.py composes it).

Usage: /tmp/curenv/bin/python tests/reference/make_taesd_img2img_goldens.py   (from the repository root)
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import diffusers
from diffusers import AutoencoderTiny, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

sys.path.insert(0, os.path.dirname(__file__))
from make_sampler_goldens import SAMPLERS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
TAESD = os.path.join(ROOT, "tests", "data", "tiny_taesd")
IMAGES = os.path.join(ROOT, "tests", "data", "images")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
PROMPT, NEGATIVE = "a small house with a red roof", "blurry"
# key, pipeline, sampler, strength, steps, guidance, mask, batch, seed
RUNS = [
    ("img2img_ddim_s06", "img2img", "ddim", 0.6, 8, 7.5, None, 2, 51),
    ("inpaint_euler_a_s075", "inpaint", "euler_a", 0.75, 6, 5.0, "mask_128x64.png", 1, 53),
]
# The hires fix's lanczos pass: key, sampler, width, height, hires width, hires height, steps,
# hires steps, denoise, guidance, batch, seed
HIRES = ("hires_lanczos_euler", "euler", 64, 64, 128, 128, 5, 6, 0.7, 6.0, 2, 57)


def main():
    vae = AutoencoderTiny.from_pretrained(TAESD, torch_dtype=torch.float32).eval()
    pipes = {
        "img2img": StableDiffusionImg2ImgPipeline.from_pretrained(MODEL, vae=vae, local_files_only=True,
                                                                  safety_checker=None, requires_safety_checker=False),
        "inpaint": StableDiffusionInpaintPipeline.from_pretrained(MODEL, vae=vae, local_files_only=True,
                                                                  safety_checker=None, requires_safety_checker=False),
    }
    tensors, runs = {}, []
    image = Image.open(os.path.join(IMAGES, "init_128x64.png")).convert("RGB")
    for key, kind, sampler, strength, steps, guidance, mask, batch, seed in RUNS:
        pipe = pipes[kind]
        pipe.set_progress_bar_config(disable=True)
        cls, extra, _ = SAMPLERS[sampler]
        pipe.scheduler = cls.from_config(dict(pipe.scheduler.config, **extra))
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        kw = dict(prompt=PROMPT, negative_prompt=NEGATIVE, image=image, strength=strength, num_inference_steps=steps,
                  guidance_scale=guidance, num_images_per_prompt=batch, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=cb,
                  callback_on_step_end_tensor_inputs=["latents"])
        if mask:
            kw.update(mask_image=Image.open(os.path.join(IMAGES, mask)), width=128, height=64)
        out = pipe(**kw)
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8"))).to(torch.float16)
        runs.append({"key": key, "kind": kind, "sampler": sampler, "strength": strength, "steps": steps,
                     "guidance": guidance, "mask": mask, "batch": batch, "seed": seed, "width": 128, "height": 64,
                     "picture": "init_128x64.png", "prompt": PROMPT, "negative_prompt": NEGATIVE, "units": len(lat)})
        print(key, len(lat), "units")
    hires(pipes["img2img"], vae, tensors, runs)
    save_file(tensors, os.path.join(GOLDEN, "taesd_img2img.safetensors"),
              metadata={"made_by": "tests/reference/make_taesd_img2img_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs)})


def hires(i2i, vae, tensors, runs):
    """The hires fix's lanczos pass with TAESD, composed as make_hires_goldens.py composes it: a
    first pass at width x height decoded by TAESD (output_type="pil"), each picture resized by PIL's
    LANCZOS to the hires size, then img2img from the pictures, encoded by TAESD (no draw), with a
    fresh generator of the same seed."""
    from diffusers import StableDiffusionPipeline
    key, sampler, w, h, w2, h2, steps, hr_steps, denoise, guidance, batch, seed = HIRES
    txt = StableDiffusionPipeline(**dict(i2i.components, vae=vae))
    txt.set_progress_bar_config(disable=True)
    cls, extra, _ = SAMPLERS[sampler]
    txt.scheduler = cls.from_config(dict(i2i.scheduler.config, **extra))
    i2i.scheduler = cls.from_config(dict(i2i.scheduler.config, **extra))
    common = dict(prompt=[PROMPT], negative_prompt=[NEGATIVE], guidance_scale=guidance, num_images_per_prompt=batch)
    first = txt(height=h, width=w, num_inference_steps=steps, output_type="pil",
                generator=torch.Generator("cpu").manual_seed(seed), **common).images
    image = [p.resize((w2, h2), Image.LANCZOS) for p in first]
    lat = []

    def cb(_p, i, t, kw):
        lat.append(kw["latents"].clone())
        return kw
    out = i2i(image=image, strength=denoise, num_inference_steps=hr_steps, output_type="np",
              generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=cb,
              callback_on_step_end_tensor_inputs=["latents"], **common)
    tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
    tensors[f"{key}.image_uint8"] = torch.from_numpy(
        np.ascontiguousarray((out.images * 255).round().astype("uint8"))).to(torch.float16)
    runs.append({"key": key, "kind": "hires", "sampler": sampler, "width": w, "height": h, "hires_width": w2,
                 "hires_height": h2, "steps": steps, "hires_steps": hr_steps, "denoise": denoise,
                 "guidance": guidance, "batch": batch, "seed": seed, "prompt": PROMPT, "negative_prompt": NEGATIVE,
                 "units": len(lat)})
    print(key, len(lat), "units")


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
