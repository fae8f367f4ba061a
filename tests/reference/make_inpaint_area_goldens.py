#!/usr/bin/env python3
"""Goldens of the inpainting options --mask-blur and --inpaint-area masked (tests/test_inpaint_area.cpp).

tests/data/golden/inpaint_area.safetensors, all from diffusers' own code and Pillow:
  blur.<mask>.<N>: the grey mask blurred by VaeImageProcessor.blur (PIL's GaussianBlur(N)), bytes;
  crop cases (metadata "crops"): VaeImageProcessor.get_crop_region(mask, width, height, pad);
  overlay: VaeImageProcessor.apply_overlay(blurred mask, init picture, a made-up generated picture,
    crop) on the 101x70 picture, bytes (the generated picture is gradient(), rebuilt by the test);
  <run>.latents_per_unit / <run>.image_u8: StableDiffusionInpaintPipeline on the tiny model
    (tests/data/tiny_sd/diffusers) fed mask_processor.blur(mask, N) as its mask, with
    padding_mask_crop for the masked runs (the output then has the picture's size).
tests/data/images/mask_101x70.png (grey) is written here too.

Usage: /tmp/curenv/bin/python tests/reference/make_inpaint_area_goldens.py   (from the repository root)
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

BLURS = [("mask_128x64.png", 1), ("mask_128x64.png", 4), ("mask_128x64.png", 9), ("mask_101x70.png", 3)]
CROPS = [("mask_101x70.png", 64, 64, 8), ("mask_101x70.png", 128, 64, 16), ("mask_101x70.png", 64, 128, 0),
         ("mask_101x70.png", 64, 64, 60), ("mask_128x64.png", 64, 64, 32), ("mask_128x64.png", 128, 64, 0),
         ("mask_64x128.png", 128, 64, 4), ("mask_64x128.png", 64, 64, 0)]
# key, sampler, strength, steps, guidance, picture, mask, blur, padding (None: whole picture), W, H, seed
RUNS = [
    ("blur4_whole", "ddim", 0.75, 6, 7.5, "init_128x64.png", "mask_128x64.png", 4, None, 128, 64, 31),
    ("masked_pad8", "dpmpp_2m", 0.6, 8, 7.5, "init_101x70.png", "mask_101x70.png", 0, 8, 64, 64, 37),
    ("masked_blur3_pad16", "euler_a", 1.0, 5, 5.0, "init_101x70.png", "mask_101x70.png", 3, 16, 128, 64, 41),
]
OVERLAY = ("init_101x70.png", "mask_101x70.png", 3, 128, 64, 16)
PROMPT, NEGATIVE = "a small house with a red roof", "blurry"


def write_mask():
    m = np.zeros((70, 101), np.uint8)
    m[12:40, 72:95] = 255
    m[44:52, 80:99] = 128   # repainted: 128/255 >= 0.5
    m[55:58, 60:66] = 127   # kept, but inside the crop box
    Image.fromarray(m, "L").save(os.path.join(IMAGES, "mask_101x70.png"))


def gradient(w, h):
    """The made-up generated picture of the overlay case (the test builds the same)."""
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([(x * 2) % 256, (y * 3) % 256, (x + y) % 256], -1).astype(np.uint8), "RGB")


def grey(name):
    return Image.open(os.path.join(IMAGES, name)).convert("L")


def main():
    write_mask()
    pipe = StableDiffusionInpaintPipeline.from_pretrained(MODEL, local_files_only=True, safety_checker=None,
                                                          requires_safety_checker=False)
    mp = pipe.mask_processor
    tensors = {}
    for name, n in BLURS:
        tensors[f"blur.{name}.{n}"] = torch.from_numpy(np.asarray(mp.blur(grey(name), n)).copy())
    crops = [{"mask": name, "width": w, "height": h, "pad": pad, "box": list(mp.get_crop_region(grey(name), w, h, pad))}
             for name, w, h, pad in CROPS]
    picture, mask, n, w, h, pad = OVERLAY
    blurred = mp.blur(grey(mask), n)
    init = Image.open(os.path.join(IMAGES, picture)).convert("RGB")
    box = mp.get_crop_region(blurred, w, h, pad)
    over = pipe.image_processor.apply_overlay(blurred, init, gradient(w, h), box)
    tensors["overlay"] = torch.from_numpy(np.asarray(over).copy())

    base_cfg = pipe.scheduler.config
    runs = []
    for key, sampler, strength, steps, guidance, picture, mask, blur, pad, w, h, seed in RUNS:
        cls, extra, _ = SAMPLERS[sampler]
        pipe.scheduler = cls.from_config(dict(base_cfg, **extra))
        mask_image = mp.blur(grey(mask), blur) if blur else grey(mask)
        image = Image.open(os.path.join(IMAGES, picture)).convert("RGB")
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=image, mask_image=mask_image, height=h, width=w,
                   strength=strength, num_inference_steps=steps, guidance_scale=guidance, padding_mask_crop=pad,
                   generator=torch.Generator("cpu").manual_seed(seed), output_type="pil",
                   callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
        tensors[f"{key}.image_u8"] = torch.from_numpy(np.asarray(out.images[0]).copy())
        runs.append({"key": key, "sampler": sampler, "strength": strength, "steps": steps, "guidance": guidance,
                     "picture": picture, "mask": mask, "blur": blur, "padding": pad, "width": w, "height": h,
                     "seed": seed, "prompt": PROMPT, "negative_prompt": NEGATIVE, "units": len(lat),
                     "out_size": list(out.images[0].size)})
        print(key, len(lat), "units", out.images[0].size)
    save_file(tensors, os.path.join(GOLDEN, "inpaint_area.safetensors"),
              metadata={"made_by": "tests/reference/make_inpaint_area_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs), "crops": json.dumps(crops),
                        "overlay": json.dumps({"picture": picture, "mask": OVERLAY[1], "blur": OVERLAY[2],
                                               "width": OVERLAY[3], "height": OVERLAY[4], "pad": OVERLAY[5],
                                               "box": list(box)}),
                        "how": "masks converted to L; blur = mask_processor.blur; runs: output_type='pil' (the "
                               "overlay needs PIL), latents_per_unit [units,1,4,h,w] NCHW at the generation size"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
