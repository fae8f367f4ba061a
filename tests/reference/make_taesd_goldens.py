#!/usr/bin/env python3
"""The tiny TAESD and its goldens (tests/test_taesd.cpp, tests/simt/test_taesd_emulated.cpp).

Writes:
  tests/data/tiny_taesd/                         a random diffusers AutoencoderTiny, fp16 (config.json +
                                                 diffusion_pytorch_model.safetensors): 4 levels of 8
                                                 channels (the tiny SD model's latent factor 8), decoder
                                                 blocks (2, 1, 1, 1), encoder blocks (1, 1, 1, 2)
  tests/data/tiny_taesd_orig/taesd_{decoder,encoder}.safetensors
                                                 the same values under the original taesd.py names (bare
                                                 nn.Sequential indices; the decoder's 0 is its Clamp)
  tests/data/golden/taesd.safetensors            (NCHW as torch holds them):

1. decode: z [2, 4, 4, 6] = 2.5 * torch.randn(generator=manual_seed(700)) (wide enough that the tanh clamp
   bends it); image = AutoencoderTiny.decode(z).sample [2, 3, 32, 48], fp32.
2. encode: x [2, 3, 32, 48] = torch.rand(generator=manual_seed(701)) * 2 - 1; latents =
   AutoencoderTiny.encode(x).latents [2, 4, 4, 6], fp32.
3. pipeline: StableDiffusionPipeline.from_pretrained(tests/data/tiny_sd/diffusers, vae=<the tiny TAESD, fp32>)
   (its DDIM scheduler), prompt "a red fox in the snow", negative "blurry", 64x64, 3 steps, guidance 3.0,
   generator=torch.Generator('cpu').manual_seed(11), output_type='np': pipeline.image_uint8 [1, 64, 64, 3] =
   (images * 255).round() and pipeline.latents_final (the sampler's last latents, which the pipeline
   divides by the TAESD's scaling_factor 1.0 before decoding).
The weights: torch.manual_seed(7) and PyTorch's default Conv2d initialisation (the decoder's output bias
then + 0.4, towards mid-grey), every parameter rounded
to fp16 before any golden is made, so the fp16 files hold exactly the reference's values.

Usage (from the repository root; the current releases, see requirements-current.txt):
    /tmp/curenv/bin/python tests/reference/make_taesd_goldens.py
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import AutoencoderTiny, StableDiffusionPipeline

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
FOLDER = os.path.join(DATA, "tiny_taesd")
ORIG = os.path.join(DATA, "tiny_taesd_orig")
OUT = os.path.join(DATA, "golden", "taesd.safetensors")
TINY_SD = os.path.join(DATA, "tiny_sd", "diffusers")

CONFIG = dict(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
              num_encoder_blocks=(1, 1, 1, 2), num_decoder_blocks=(2, 1, 1, 1))
SEED_INIT, SEED_Z, SEED_X = 7, 700, 701
RUN = dict(prompt="a red fox in the snow", negative_prompt="blurry", height=64, width=64, steps=3, guidance=3.0,
           seed=11)


def make_model():
    torch.manual_seed(SEED_INIT)
    m = AutoencoderTiny(**CONFIG).eval()
    with torch.no_grad():
        # the random decoder's image sits near 0 in [0, 1]: its output bias is lifted to mid-grey so that
        # few pixels clamp and the pixel comparison sees the whole range
        m.decoder.layers[-1].bias.add_(0.4)
        for p in m.parameters():
            p.copy_(p.half().float())
    return m


def save_original(m):
    """taesd.py's names: the decoder's Sequential has Clamp at 0, so diffusers' index K is K+1 there."""
    os.makedirs(ORIG, exist_ok=True)
    sd = m.state_dict()
    dec, enc = {}, {}
    for k, v in sd.items():
        half, _, rest = k.partition(".layers.")
        idx, _, leaf = rest.partition(".")
        if half == "decoder":
            dec[f"{int(idx) + 1}.{leaf}"] = v.half().contiguous()
        else:
            enc[f"{idx}.{leaf}"] = v.half().contiguous()
    save_file(dec, os.path.join(ORIG, "taesd_decoder.safetensors"))
    save_file(enc, os.path.join(ORIG, "taesd_encoder.safetensors"))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    m = make_model()
    m.half().save_pretrained(FOLDER, safe_serialization=True)
    m.float()
    save_original(m)
    # the reference runs the saved folder as diffusers loads it
    ref = AutoencoderTiny.from_pretrained(FOLDER, local_files_only=True, torch_dtype=torch.float32).eval()
    for (k, a), b in zip(ref.state_dict().items(), m.state_dict().values()):
        assert torch.equal(a, b), k
    t = {}
    with torch.no_grad():
        z = 2.5 * torch.randn((2, 4, 4, 6), generator=torch.Generator().manual_seed(SEED_Z))
        t["z"], t["image"] = z, ref.decode(z).sample
        x = torch.rand((2, 3, 32, 48), generator=torch.Generator().manual_seed(SEED_X)) * 2 - 1
        t["x"], t["latents"] = x, ref.encode(x).latents
        assert ref.config.scaling_factor == 1.0

        pipe = StableDiffusionPipeline.from_pretrained(TINY_SD, vae=ref, safety_checker=None,
                                                       requires_safety_checker=False, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        final = {}

        def cb(_p, i, _t, kw):
            final["latents"] = kw["latents"].clone()
            return kw
        out = pipe(prompt=RUN["prompt"], negative_prompt=RUN["negative_prompt"], height=RUN["height"],
                   width=RUN["width"], num_inference_steps=RUN["steps"], guidance_scale=RUN["guidance"],
                   generator=torch.Generator("cpu").manual_seed(RUN["seed"]), output_type="np",
                   callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        t["pipeline.latents_final"] = final["latents"]
        t["pipeline.image_uint8"] = torch.from_numpy((out.images * 255).round().astype(np.uint8))
    meta = {"how": __doc__.split("\n\n")[1].strip()[:1500], "diffusers": diffusers.__version__,
            "torch": torch.__version__, "config": json.dumps(CONFIG), "run": json.dumps(RUN), "layout": "NCHW"}
    save_file({k: v.contiguous() for k, v in t.items()}, OUT, metadata=meta)
    print(f"{OUT}: {os.path.getsize(OUT)} bytes")
    for k, v in t.items():
        print(f"  {k} {list(v.shape)} {v.dtype} max|v| {v.float().abs().max().item():.4g}")


if __name__ == "__main__":
    main()
