#!/usr/bin/env python3
"""Goldens of inpainting (tests/test_inpaint.cpp), from diffusers' StableDiffusionInpaintPipeline.

tests/data/golden/inpaint.safetensors: the pipeline on the tiny model (tests/data/tiny_sd/diffusers,
a regular 4-channel UNet: the known region renoised and blended back after every step), the runs of
RUNS: DDIM at strength 0.75 (batch 2), Euler ancestral at strength 1 (pure noise start, 64 wide x 128
high), DPM++ 2M at 0.5; the masks tests/data/images/mask_128x64.png and mask_64x128.png (grey, with
values 127 and 128 at the binarization threshold); the latents after every unit and the images.

Usage: /tmp/curenv/bin/python tests/reference/make_inpaint_goldens.py   (from the repository root)
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import diffusers
from diffusers import StableDiffusionInpaintPipeline

sys.path.insert(0, os.path.dirname(__file__))
from make_sampler_goldens import SAMPLERS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
IMAGES = os.path.join(ROOT, "tests", "data", "images")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")

RUNS = [
    ("ddim_s075", "ddim", 0.75, 8, 7.5, "init_128x64.png", "mask_128x64.png", 2, 21),
    ("euler_a_s1", "euler_a", 1.0, 6, 5.0, "init_101x70.png", "mask_64x128.png", 1, 23),
    ("dpmpp_2m_s05", "dpmpp_2m", 0.5, 10, 7.5, "init_128x64.png", "mask_128x64.png", 1, 29),
]
PROMPT, NEGATIVE = "a small house with a red roof", "blurry"


def masks():
    m = np.zeros((64, 128), np.uint8)
    m[10:50, 30:90] = 255
    m[20:30, 60:80] = 128   # repainted: 128/255 >= 0.5
    m[40:45, 35:45] = 127   # kept: 127/255 < 0.5
    Image.fromarray(m, "L").save(os.path.join(IMAGES, "mask_128x64.png"))
    t = np.zeros((128, 64), np.uint8)
    t[70:120, 8:56] = 200
    t[0:16, 0:64] = 255
    Image.fromarray(t, "L").save(os.path.join(IMAGES, "mask_64x128.png"))


def main():
    masks()
    pipe = StableDiffusionInpaintPipeline.from_pretrained(MODEL, local_files_only=True, safety_checker=None,
                                                          requires_safety_checker=False)
    base_cfg = pipe.scheduler.config
    tensors, runs = {}, []
    for key, name, strength, steps, guidance, picture, mask, batch, seed in RUNS:
        cls, extra, _ = SAMPLERS[name]
        pipe.scheduler = cls.from_config(dict(base_cfg, **extra))
        mask_image = Image.open(os.path.join(IMAGES, mask))
        w, h = mask_image.size
        image = Image.open(os.path.join(IMAGES, picture)).convert("RGB")
        resize = "just" if image.size == (w, h) else "crop"
        if image.size != (w, h):
            image = pipe.image_processor.resize(image, h, w, resize_mode="crop")
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=image, mask_image=mask_image, height=h, width=w,
                   strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                   num_images_per_prompt=batch, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                   callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8"))).to(torch.float16)
        runs.append({"key": key, "sampler": name, "strength": strength, "steps": steps, "guidance": guidance,
                     "picture": picture, "mask": mask, "resize_mode": resize, "width": w, "height": h,
                     "batch": batch, "prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": seed, "units": len(lat)})
        print(key, len(lat), "units", w, "x", h)
    save_file(tensors, os.path.join(GOLDEN, "inpaint.safetensors"),
              metadata={"made_by": "tests/reference/make_inpaint_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs),
                        "how": "StableDiffusionInpaintPipeline.from_pretrained(tests/data/tiny_sd/diffusers), "
                               "scheduler = Class.from_config(its config + the sampler's settings), "
                               "Generator('cpu').manual_seed(seed); the picture resized by "
                               "image_processor.resize(resize_mode='crop') when its size differs from the "
                               "mask's; latents_per_unit [units,B,4,h,w] NCHW from callback_on_step_end; "
                               "image_uint8 NHWC (output_type='np' * 255).round(), stored as float16"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
