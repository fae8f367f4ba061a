#!/usr/bin/env python3
"""Goldens of the VAE encoder (tests/test_vae_encoder.cpp): tests/data/golden/vae_encoder.safetensors.

The reference is diffusers' AutoencoderKL itself (from_pretrained of the tiny model's VAE,
tests/data/tiny_sd/diffusers/vae, and of the second tiny VAE, tests/data/tiny_vae), in fp32 on the
CPU, torch.no_grad:

1. encode: a deterministic image batch x [2, 3, 32, 48] (non-square, multiples of 8) with values in
   [-1, 1): x = torch.rand(..., generator=torch.Generator().manual_seed(500)) * 2 - 1. Recorded:
   the forward-hook outputs of encoder.conv_in, encoder.down_blocks.i, encoder.mid_block and
   quant_conv (= the moments [mean channels, logvar channels], unclamped), and of
   vae.encode(x).latent_dist: mean, logvar (clamped to [-30, 20]) and
   sample(generator=torch.Generator().manual_seed(501)) with the noise that call drew (re-drawn here
   with the same seed and checked: sample == mean + std * noise, bit for bit).
2. tiny_vae: the second VAE's moments for the same x (its encoder weights are in the folder and in
   the bare-LDM fp16 single file tests/data/tiny_vae_ldm.safetensors, with identical values).
3. quiet blocks (input std 1e-3, variance 1e-6, where a GroupNorm's eps 1e-6 matters at order 1):
   encoder.down_blocks[0].resnets[0](x, None), encoder.mid_block.attentions[0](x) (its group_norm
   path, with the residual), SiLU(encoder.conv_norm_out(x)), SiLU(decoder.conv_norm_out(x)); inputs
   from torch.Generator().manual_seed(502) in that order.

All 4-d tensors are NCHW as torch holds them (the C++ test permutes to NHWC).

Usage (from the repository root; the current releases, see requirements-current.txt):
    /tmp/curenv/bin/python tests/reference/make_vae_encoder_goldens.py
"""
import json
import os

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import AutoencoderKL

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
VAE = os.path.join(DATA, "tiny_sd", "diffusers", "vae")
VAE2 = os.path.join(DATA, "tiny_vae")
OUT = os.path.join(DATA, "golden", "vae_encoder.safetensors")

IMAGE_SHAPE = (2, 3, 32, 48)
SEED_IMAGE, SEED_SAMPLE, SEED_QUIET = 500, 501, 502
QUIET_STD = 1e-3


def load(path):
    vae = AutoencoderKL.from_pretrained(path, local_files_only=True)
    return vae.to(torch.float32).eval()


def encode(vae, x, tensors, prefix, probes):
    """Runs vae.encode(x) with forward hooks on `probes`; returns its latent_dist."""
    handles = []
    for name in probes:
        def hook(_m, _i, out, name=name):
            tensors[prefix + name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        handles.append(vae.get_submodule(name).register_forward_hook(hook))
    dist = vae.encode(x).latent_dist
    for h in handles:
        h.remove()
    return dist


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    vae = load(VAE)
    levels = len(vae.config.block_out_channels)
    tensors = {}
    with torch.no_grad():
        x = torch.rand(IMAGE_SHAPE, generator=torch.Generator().manual_seed(SEED_IMAGE)) * 2 - 1
        tensors["x"] = x
        probes = ["encoder.conv_in"] + [f"encoder.down_blocks.{i}" for i in range(levels)] + \
                 ["encoder.mid_block", "quant_conv"]
        dist = encode(vae, x, tensors, "", probes)
        tensors["mean"] = dist.mean
        tensors["logvar"] = dist.logvar
        sample = dist.sample(generator=torch.Generator().manual_seed(SEED_SAMPLE))
        noise = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(SEED_SAMPLE))
        assert torch.equal(sample, dist.mean + dist.std * noise), "the noise is not what sample() drew"
        assert torch.equal(dist.mean, tensors["quant_conv"][:, :vae.config.latent_channels])
        tensors["noise"] = noise
        tensors["sample"] = sample

        vae2 = load(VAE2)
        encode(vae2, x, tensors, "tiny_vae.", ["quant_conv"])

        g = torch.Generator().manual_seed(SEED_QUIET)
        ch = vae.config.block_out_channels
        quiet = lambda c: QUIET_STD * torch.randn((2, c, 8, 8), generator=g)  # noqa: E731
        q = quiet(ch[0])
        tensors["quiet.enc_resnet.x"], tensors["quiet.enc_resnet.out"] = q, vae.encoder.down_blocks[0].resnets[0](q, None)
        q = quiet(ch[-1])
        tensors["quiet.enc_attn.x"], tensors["quiet.enc_attn.out"] = q, vae.encoder.mid_block.attentions[0](q)
        q = quiet(ch[-1])
        tensors["quiet.enc_norm_out.x"] = q
        tensors["quiet.enc_norm_out.out"] = vae.encoder.conv_act(vae.encoder.conv_norm_out(q))
        q = quiet(ch[0])
        tensors["quiet.dec_norm_out.x"] = q
        tensors["quiet.dec_norm_out.out"] = vae.decoder.conv_act(vae.decoder.conv_norm_out(q))

    meta = {
        "how": __doc__.split("\n\n")[1].strip()[:900],
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "image_shape": json.dumps(IMAGE_SHAPE),
        "seeds": json.dumps({"image": SEED_IMAGE, "sample": SEED_SAMPLE, "quiet": SEED_QUIET}),
        "layout": "NCHW",
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT, metadata=meta)
    print(f"{OUT}: {len(tensors)} tensors, {os.path.getsize(OUT)} bytes")
    for k, v in tensors.items():
        print(f"  {k} {list(v.shape)} max|v| {v.abs().max().item():.4g}")


if __name__ == "__main__":
    main()
