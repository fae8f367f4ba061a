#!/usr/bin/env python3
"""Goldens of the hires fix (tests/test_hires.cpp), from torch and diffusers.

1. The latent upscalers: torch.nn.functional.interpolate(x, size=(h2, w2), mode=M, antialias=False)
   on NCHW float32 latents with the default align_corners (False for bilinear and bicubic), as
   A1111's latent_upscale_modes call it: "Latent" bilinear, "Latent (nearest)" nearest,
   "Latent (bicubic)" bicubic. Several shapes, scales 1.5 and 2, non-square ones; the size is
   A1111's int(side * scale) // 8 of the latent side's image side.
2. Whole hires runs on the tiny model (tests/data/tiny_sd/diffusers), composed here because diffusers
   has no hires pipeline:
     first pass  StableDiffusionPipeline(..., output_type="latent") at width x height;
     upscale     latent: interpolate the first pass's latents to (h2/8, w2/8);
                 lanczos: decode them (vae.decode(latents / scaling_factor), image_processor
                 .postprocess to 8-bit pictures, what output_type="pil" gives), PIL
                 Image.resize((w2, h2), LANCZOS) each;
     second pass StableDiffusionImg2ImgPipeline(image=<upscaled latents> (4 channels: used as the
                 initial latents, no encode) or the resized pictures, strength=denoise,
                 num_inference_steps=hires steps), with a fresh Generator("cpu").manual_seed(seed):
                 the second pass is seeded again with the same seed, as A1111 does.
   Same prompt, negative prompt, guidance and sampler for both passes; batch 2, non-square sizes.
   Saved: the first pass's latents, the upscaled latents (latent runs) or resized pictures
   (lanczos), the second pass's latents after every unit and its images.

Usage (from the repository root; diffusers' current release, requirements-current.txt):
    /tmp/curenv/bin/python tests/reference/make_hires_goldens.py
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import diffusers

sys.path.insert(0, os.path.dirname(__file__))
from make_sampler_goldens import SAMPLERS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")

MODES = {"latent": "bilinear", "latent-nearest": "nearest", "latent-bicubic": "bicubic"}
# (n, c, h, w, scale): latent sides of images; the target is int(8·side·scale) // 8.
SHAPES = [(1, 4, 8, 8, 2.0), (2, 4, 8, 16, 1.5), (1, 4, 16, 8, 1.5), (1, 4, 13, 7, 2.0), (1, 4, 13, 7, 1.5),
          (2, 4, 6, 10, 1.7)]

# (key, upscaler, sampler, width, height, scale, steps, hires steps, denoise, guidance, batch, prompt, seed)
RUNS = [
    ("latent_ddim", "latent", "ddim", 64, 128, 2.0, 6, 0, 0.6, 7.5, 2, "a red fox in the snow", 21),
    ("lanczos_euler_a", "lanczos", "euler_a", 128, 64, 2.0, 5, 4, 0.75, 5.0, 2, "a castle on a hill", 23),
]
NEGATIVE = "blurry"


def upscalers():
    tensors, cases = {}, []
    gen = torch.Generator("cpu").manual_seed(5)
    for i, (n, c, h, w, scale) in enumerate(SHAPES):
        x = torch.randn((n, c, h, w), generator=gen) * 1.5
        h2, w2 = int(h * 8 * scale) // 8, int(w * 8 * scale) // 8
        tensors[f"case{i}.input"] = x
        for name, mode in MODES.items():
            tensors[f"case{i}.{name}"] = F.interpolate(x, size=(h2, w2), mode=mode, antialias=False).contiguous()
        cases.append({"case": i, "shape": [n, c, h, w], "out": [h2, w2], "scale": scale})
    save_file(tensors, os.path.join(GOLDEN, "latent_upscale.safetensors"),
              metadata={"made_by": "tests/reference/make_hires_goldens.py", "torch": torch.__version__,
                        "cases": json.dumps(cases), "modes": json.dumps(MODES),
                        "how": "F.interpolate(input, size=out, mode=modes[name], antialias=False), "
                               "align_corners default; input randn(generator seed 5) * 1.5, NCHW float32"})


def hires_runs():
    from PIL import Image
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
    txt = StableDiffusionPipeline.from_pretrained(MODEL, local_files_only=True, safety_checker=None,
                                                  requires_safety_checker=False)
    i2i = StableDiffusionImg2ImgPipeline(**txt.components)
    base_cfg = txt.scheduler.config
    tensors, runs = {}, []
    for key, upscaler, name, w, h, scale, steps, hr_steps, denoise, guidance, batch, prompt, seed in RUNS:
        cls, extra, _ = SAMPLERS[name]
        txt.scheduler = cls.from_config(dict(base_cfg, **extra))
        i2i.scheduler = cls.from_config(dict(base_cfg, **extra))
        w2, h2 = int(w * scale), int(h * scale)
        common = dict(prompt=[prompt], negative_prompt=[NEGATIVE], guidance_scale=guidance,
                      num_images_per_prompt=batch)
        first = txt(height=h, width=w, num_inference_steps=steps, output_type="latent",
                    generator=torch.Generator("cpu").manual_seed(seed), **common).images
        tensors[f"{key}.first_latents"] = first.float().contiguous()
        if upscaler == "lanczos":
            decoded = txt.vae.decode(first / txt.vae.config.scaling_factor, return_dict=False)[0]
            pictures = txt.image_processor.postprocess(decoded.detach(), output_type="pil")
            image = [p.resize((w2, h2), Image.LANCZOS) for p in pictures]
            tensors[f"{key}.pictures_uint8"] = torch.from_numpy(
                np.stack([np.asarray(p) for p in image])).to(torch.float16).contiguous()
        else:
            image = F.interpolate(first, size=(h2 // 8, w2 // 8), mode=MODES[upscaler], antialias=False)
            tensors[f"{key}.upscaled_latents"] = image.float().contiguous()
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = i2i(image=image, strength=denoise, num_inference_steps=hr_steps or steps, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=cb,
                  callback_on_step_end_tensor_inputs=["latents"], **common)
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8"))).to(torch.float16)
        runs.append({"key": key, "upscaler": upscaler, "sampler": name, "width": w, "height": h, "scale": scale,
                     "hires_width": w2, "hires_height": h2, "steps": steps, "hires_steps": hr_steps,
                     "denoise": denoise, "guidance": guidance, "batch": batch, "prompt": prompt,
                     "negative_prompt": NEGATIVE, "seed": seed, "units": len(lat)})
        print(key, len(lat), "units", w, "x", h, "->", w2, "x", h2)
    save_file(tensors, os.path.join(GOLDEN, "hires.safetensors"),
              metadata={"made_by": "tests/reference/make_hires_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs),
                        "how": "first pass StableDiffusionPipeline(output_type='latent'); upscale (interpolate "
                               "the latents, or decode + PIL LANCZOS resize); second pass "
                               "StableDiffusionImg2ImgPipeline(image=..., strength=denoise) with a fresh "
                               "Generator('cpu').manual_seed(seed); latents_per_unit [units,B,4,h,w] NCHW; "
                               "image_uint8 / pictures_uint8 NHWC stored as float16"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    upscalers()
    hires_runs()
