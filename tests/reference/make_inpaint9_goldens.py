#!/usr/bin/env python3
"""A tiny 9-channel inpainting UNet (sd-v1-5-inpainting's layout: latents, mask, masked-image latents)
and the goldens of inpainting with it (tests/test_inpaint9.cpp), from diffusers'
StableDiffusionInpaintPipeline.

tests/data/tiny_inpaint/unet/: the UNet as diffusers saves it (config.json, fp16 weights);
tests/data/tiny_inpaint/unet_ldm_fp16.safetensors: the same tensors under the original LDM names
(model.diffusion_model.*, ldm_names.py; proven here with diffusers' own single-file converter).
The whole models are put together by the tests from tests/data/tiny_sd (text encoder, tokenizer, VAE,
scheduler) and these, as a diffusers folder and as an LDM single file: a 9-channel model differs
from a regular one only in its UNet.

tests/data/golden/inpaint9.safetensors: the pipeline (the UNet's fp16 weights, run in fp32) on the
runs of RUNS — DDIM at strength 1 (batch 2: no picture sample is drawn), Euler ancestral at 0.75 (a
cropped picture, 64 wide x 128 high: the picture's sample is drawn first) — and DDIM at 0.75 with the
mask blurred (radius 3) and padding_mask_crop=16 (the 101x70 picture's masked box rendered at 128x64
and pasted back): the latents after every unit and the images.

Usage: /tmp/curenv/bin/python tests/reference/make_inpaint9_goldens.py   (from the repository root)
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file, load_file

import diffusers
from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

sys.path.insert(0, os.path.dirname(__file__))
import ldm_names  # noqa: E402
from make_goldens import UNET_CONFIG, reinit  # noqa: E402
from make_sampler_goldens import SAMPLERS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
OUT = os.path.join(ROOT, "tests", "data", "tiny_inpaint")
IMAGES = os.path.join(ROOT, "tests", "data", "images")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")

# Narrower than the regular tiny UNet (the data must stay small); the same block types.
UNET9 = dict(UNET_CONFIG, in_channels=9, block_out_channels=(8, 16, 16, 16), norm_num_groups=4, layers_per_block=1)
RUNS = [
    ("ddim_s1", "ddim", 1.0, 8, 7.5, "init_128x64.png", "mask_128x64.png", 2, 31),
    ("euler_a_s075", "euler_a", 0.75, 6, 5.0, "init_101x70.png", "mask_64x128.png", 1, 37),
]
PROMPT, NEGATIVE = "a small house with a red roof", "blurry"


def make_unet():
    unet = UNet2DConditionModel(**UNET9).eval()
    reinit(unet, torch.Generator().manual_seed(909))
    with torch.no_grad():  # the committed weights are fp16: the reference runs those values in fp32
        for p in unet.parameters():
            p.copy_(p.half().float())
    d = os.path.join(OUT, "unet")
    shutil.rmtree(d, ignore_errors=True)
    unet.half().save_pretrained(d, safe_serialization=True)
    unet.float()
    cfg = dict(unet.config)
    ldm = {ldm_names.UNET_PREFIX + ldm_names.unet_key(k, cfg): v.detach().half().contiguous().clone()
           for k, v in unet.state_dict().items()}
    path = os.path.join(OUT, "unet_ldm_fp16.safetensors")
    save_file(ldm, path, metadata={"format": "pt"})
    # The LDM names, proven by diffusers' own converter.
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
    back = convert_ldm_unet_checkpoint(load_file(path), cfg)
    want = unet.state_dict()
    assert set(back) == set(want), sorted(set(back) ^ set(want))[:10]
    for k in want:
        assert torch.equal(back[k].float(), want[k]), k
    return unet


def main():
    unet = make_unet()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        shutil.copytree(MODEL, folder)
        shutil.rmtree(os.path.join(folder, "unet"))
        shutil.copytree(os.path.join(OUT, "unet"), os.path.join(folder, "unet"))
        pipe = StableDiffusionInpaintPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                              requires_safety_checker=False,
                                                              torch_dtype=torch.float32)
    assert pipe.unet.config.in_channels == 9 and pipe.unet.dtype == torch.float32
    pipe.set_progress_bar_config(disable=True)
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
    # The inpainting options with a 9-channel model: the mask blurred (mask_processor.blur, radius 3)
    # and only its box plus 16 pixels rendered (padding_mask_crop), pasted back into the 101x70 picture.
    key = "ddim_s075_masked_blur3_pad16"
    pipe.scheduler = SAMPLERS["ddim"][0].from_config(dict(base_cfg, **SAMPLERS["ddim"][1]))
    mask_image = pipe.mask_processor.blur(Image.open(os.path.join(IMAGES, "mask_101x70.png")).convert("L"), 3)
    image = Image.open(os.path.join(IMAGES, "init_101x70.png")).convert("RGB")
    lat = []

    def cb2(_p, i, t, kw):
        lat.append(kw["latents"].clone())
        return kw
    out = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=image, mask_image=mask_image, height=64, width=128,
               strength=0.75, num_inference_steps=8, guidance_scale=7.5, padding_mask_crop=16,
               generator=torch.Generator("cpu").manual_seed(43), output_type="pil",
               callback_on_step_end=cb2, callback_on_step_end_tensor_inputs=["latents"])
    tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float().contiguous()
    tensors[f"{key}.image_uint8"] = torch.from_numpy(np.asarray(out.images[0]).copy()).to(torch.float16)
    runs.append({"key": key, "sampler": "ddim", "strength": 0.75, "steps": 8, "guidance": 7.5,
                 "picture": "init_101x70.png", "mask": "mask_101x70.png", "blur": 3, "padding": 16,
                 "width": 128, "height": 64, "batch": 1, "prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": 43,
                 "units": len(lat), "out_size": list(out.images[0].size)})
    print(key, len(lat), "units", out.images[0].size)
    save_file(tensors, os.path.join(GOLDEN, "inpaint9.safetensors"),
              metadata={"made_by": "tests/reference/make_inpaint9_goldens.py", "diffusers": diffusers.__version__,
                        "runs": json.dumps(runs),
                        "how": "StableDiffusionInpaintPipeline.from_pretrained(tests/data/tiny_sd/diffusers with "
                               "its unet/ replaced by tests/data/tiny_inpaint/unet, float32), scheduler = "
                               "Class.from_config(its config + the sampler's settings), "
                               "Generator('cpu').manual_seed(seed); the picture resized by "
                               "image_processor.resize(resize_mode='crop') when its size differs from the "
                               "mask's; latents_per_unit [units,B,4,h,w] NCHW from callback_on_step_end; "
                               "image_uint8 NHWC (output_type='np' * 255).round(), stored as float16"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
