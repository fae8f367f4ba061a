#!/usr/bin/env python3
"""Goldens of ControlNet with pictures in (tests/test_controlnet_img2img.cpp), from diffusers 0.42.1's
StableDiffusionControlNetImg2ImgPipeline and StableDiffusionControlNetInpaintPipeline
(pipelines/controlnet/pipeline_controlnet_img2img.py, pipeline_controlnet_inpaint.py).

The nets are tests/data/tiny_controlnet/{a,b} (made by make_controlnet_goldens.py; fp16 values run
in float32), the model tests/data/tiny_sd/diffusers, the pictures tests/data/images. What these
pipelines do beyond the text-to-image one and the img2img/inpainting ones (read in their code):
 * the guidance window counts the units that run: keep[i] = 1 - float(i/N < start or (i+1)/N > end)
   with N = len(timesteps) AFTER get_timesteps cut them by strength, i from 0 at the first unit run;
 * the init picture and the control picture are both resized to the run's height x width (the
   control one by the control image processor: Lanczos, [0, 1]); the init picture is encoded and
   sampled as in the img2img pipeline, the masked picture as in the inpainting pipeline;
 * a 9-channel inpainting UNet: the ControlNet (4 input channels) gets the 4 latent channels, the
   UNet the concatenation with the mask and the masked picture's latents.
Runs (128x64, batch 1; the window inside the cut schedule so a window over the whole schedule fails):
  img2img  net a at 0.8, DDIM 10 steps at strength 0.6 (6 units), window 0.2-0.9, guidance 7.5;
  inpaint  nets a (1.0) and b (0.6) on the regular 4-channel model, Euler a 8 steps at 0.75, mask_128x64.png.
(No 9-channel run: the tiny inpainting UNet has other widths than the tiny nets, and a third net
would not fit the GPU machine's 64 MiB of tree and kit.)
Saved per run: the latents after every unit and the uint8 images (NHWC, as float16) into
tests/data/golden/controlnet_img2img.safetensors, the runs as metadata.

Usage: /tmp/curenv/bin/python tests/reference/make_controlnet_img2img_goldens.py   (from the repository root)
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import diffusers
from diffusers import (ControlNetModel, StableDiffusionControlNetImg2ImgPipeline,
                       StableDiffusionControlNetInpaintPipeline)
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sampler_goldens import SAMPLERS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
NETS = os.path.join(ROOT, "tests", "data", "tiny_controlnet")
IMAGES = os.path.join(ROOT, "tests", "data", "images")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
PROMPT, NEGATIVE = "a house with a garden, line art", "blurry"
WIDTH, HEIGHT = 128, 64
# key, pipeline, sampler, steps, strength, guidance, seed, controls [(net, image, scale)], start, end, mask
RUNS = [
    ("img2img", "img2img", "ddim", 10, 0.6, 7.5, 61, [("a", "control_64x96.png", 0.8)], 0.2, 0.9, None),
    ("inpaint", "inpaint", "euler_a", 8, 0.75, 5.0, 62,
     [("a", "control_64x96.png", 1.0), ("b", "control_48x40.png", 0.6)], 0.0, 1.0, "mask_128x64.png"),
]


def main():
    nets = {n: ControlNetModel.from_pretrained(os.path.join(NETS, n), torch_dtype=torch.float32).eval() for n in "ab"}
    common = dict(local_files_only=True, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                  torch_dtype=torch.float32)
    i2i = StableDiffusionControlNetImg2ImgPipeline.from_pretrained(MODEL, controlnet=nets["a"], **common)
    inp = StableDiffusionControlNetInpaintPipeline(**i2i.components)
    pipes = {"img2img": i2i, "inpaint": inp}
    base_cfg = i2i.scheduler.config
    init = Image.open(os.path.join(IMAGES, "init_128x64.png")).convert("RGB")
    tensors, runs = {}, []
    for key, kind, sampler, steps, strength, guidance, seed, controls, start, end, mask in RUNS:
        pipe = pipes[kind]
        pipe.set_progress_bar_config(disable=True)
        cls, extra, _ = SAMPLERS[sampler]
        pipe.scheduler = cls.from_config(dict(base_cfg, **extra))
        multi = len(controls) > 1
        pipe.controlnet = MultiControlNetModel([nets[c[0]] for c in controls]) if multi else nets[controls[0][0]]
        images = [Image.open(os.path.join(IMAGES, c[1])) for c in controls]
        scales = [c[2] for c in controls]
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        kw = dict(prompt=PROMPT, negative_prompt=NEGATIVE, image=init, control_image=images if multi else images[0],
                  controlnet_conditioning_scale=scales if multi else scales[0], control_guidance_start=start,
                  control_guidance_end=end, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                  height=HEIGHT, width=WIDTH, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                  callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        if mask:
            kw["mask_image"] = Image.open(os.path.join(IMAGES, mask))
        out = pipe(**kw)
        n = len(lat)
        keep = [1.0 - float(i / n < start or (i + 1) / n > end) for i in range(n)]
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8"))).to(torch.float16)
        runs.append({"key": key, "kind": kind, "sampler": sampler, "steps": steps, "strength": strength,
                     "guidance": guidance, "seed": seed, "batch": 1, "width": WIDTH, "height": HEIGHT,
                     "prompt": PROMPT, "negative_prompt": NEGATIVE, "picture": "init_128x64.png", "mask": mask,
                     "controls": [{"model": c[0], "image": c[1], "scale": c[2]} for c in controls],
                     "control_start": start, "control_end": end, "units": n, "keep": keep})
        print(key, n, "units, keep", keep)
    save_file(tensors, os.path.join(GOLDEN, "controlnet_img2img.safetensors"),
              metadata={"made_by": "tests/reference/make_controlnet_img2img_goldens.py",
                        "diffusers": diffusers.__version__, "torch": torch.__version__, "runs": json.dumps(runs),
                        "how": "StableDiffusionControlNetImg2ImgPipeline / StableDiffusionControlNetInpaintPipeline "
                               "(tiny_sd, nets tiny_controlnet/{a,b} in float32), "
                               "Generator('cpu').manual_seed(seed); latents_per_unit [units,B,4,h,w] NCHW; "
                               "image_uint8 NHWC stored as float16"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
