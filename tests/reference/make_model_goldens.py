#!/usr/bin/env python3
"""Goldens of the model options (tests/test_model_options.cpp): --clip-skip, --vae, --embedding.

Every reference image comes from diffusers' StableDiffusionPipeline on the tiny model
(tests/data/tiny_sd/diffusers), DDIM (the model's own scheduler), guidance 7.5, 64x64, uint8 images
as (output_type='np' * 255).round() (what numpy_to_pil does):

1. clip skip: pipe(..., clip_skip=1), which is A1111's "Clip skip: 2" and our --clip-skip 2
   (diffusers takes hidden_states[-(clip_skip + 1)], then final_layer_norm, for the prompt only:
   the negative prompt keeps the last layer). Also the prompt embeddings of encode_prompt.
2. VAE swap: a second tiny AutoencoderKL (the tiny model's config, other seeded random weights,
   rounded to fp16-representable values so that the fp16 single file holds exactly the folder's
   values), saved as a diffusers vae/ folder (tests/data/tiny_vae/) and as a single file with bare
   LDM names in fp16 (tests/data/tiny_vae_ldm.safetensors, the form of vae-ft-mse-840000-ema-pruned);
   the single file is checked against diffusers' own convert_ldm_vae_checkpoint. Reference images:
   StableDiffusionPipeline.from_pretrained(tiny model, vae=that VAE).
3. Textual inversion: two seeded random embeddings for the text encoder's width (8): one vector in
   diffusers' form ({"tiny-obj": [8]}) and two vectors in A1111's form ({"emb_params": [2, 8]});
   reference images from pipe.load_textual_inversion(file, token=<file stem>).

Usage (from the repository root; the current releases, see requirements-current.txt):
    /tmp/curenv/bin/python tests/reference/make_model_goldens.py
"""
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
import transformers
from diffusers import AutoencoderKL, StableDiffusionPipeline
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

sys.path.insert(0, os.path.dirname(__file__))
import ldm_names  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
MODEL = os.path.join(DATA, "tiny_sd", "diffusers")
GOLDEN = os.path.join(DATA, "golden")
VAE_DIR = os.path.join(DATA, "tiny_vae")
VAE_LDM = os.path.join(DATA, "tiny_vae_ldm.safetensors")
EMB_DIR = os.path.join(DATA, "embeddings")

CALL = dict(steps=4, guidance=7.5, width=64, height=64, seed=77)


def reinit(model, gen):
    """As make_goldens.py: matrices/convs N(0, 1/fan_in), norm gains 1+0.2N, biases 0.1N; then
    rounded to fp16-representable values (so the fp16 file is lossless)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.ndim >= 2:
                v = r / math.sqrt(p.numel() // p.shape[0])
            elif name.endswith("weight"):
                v = 1.0 + 0.2 * r
            else:
                v = 0.1 * r
            p.copy_(v.half().float())


def load_pipe(**kw):
    return StableDiffusionPipeline.from_pretrained(MODEL, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False, **kw)


def alias_text_model(pipe):
    """diffusers 0.42.1's clip_skip path calls text_encoder.text_model.final_layer_norm, which
    transformers 5's CLIPTextModel no longer has (its embeddings, encoder and final_layer_norm are
    direct children): AttributeError. The attribute is aliased to the model itself (outside
    _modules, so state_dict and named_modules are unchanged) and diffusers' own code runs as written."""
    te = pipe.text_encoder
    if not hasattr(te, "text_model"):
        object.__setattr__(te, "text_model", te)


def run(pipe, prompt, negative, images, **kw):
    out = pipe(prompt=prompt, negative_prompt=negative, height=CALL["height"], width=CALL["width"],
               num_inference_steps=CALL["steps"], guidance_scale=CALL["guidance"], num_images_per_prompt=images,
               generator=torch.Generator("cpu").manual_seed(CALL["seed"]), output_type="np", **kw)
    return torch.from_numpy(np.ascontiguousarray((out.images * 255).round().astype("uint8")))


def main():
    tensors, runs = {}, []

    def add(key, prompt, negative, images, img, **extra):
        tensors[f"{key}.image_uint8"] = img
        runs.append(dict(key=key, prompt=prompt, negative_prompt=negative, images=images, **extra))
        print(key, tuple(img.shape), "mean", float(img.float().mean()), "std", float(img.float().std()))

    pipe = load_pipe()
    alias_text_model(pipe)
    n_layers = pipe.text_encoder.config.num_hidden_layers

    # ---- 1. clip skip: A1111/our N = diffusers' clip_skip N-1.
    prompt, negative = "a lighthouse on a cliff at dusk", "fog"
    add("clip_skip2", prompt, negative, 2, run(pipe, prompt, negative, 2, clip_skip=1), clip_skip=2)
    add("clip_skip1", prompt, negative, 2, run(pipe, prompt, negative, 2), clip_skip=1)
    with torch.no_grad():
        for ours in range(1, n_layers + 1):
            emb, _ = pipe.encode_prompt([prompt, "fog"], "cpu", 1, False,
                                        clip_skip=None if ours == 1 else ours - 1)
            tensors[f"clip_skip{ours}.prompt_embeds"] = emb.contiguous()

    # ---- 2. VAE swap.
    vae = AutoencoderKL.from_config(pipe.vae.config)
    reinit(vae, torch.Generator("cpu").manual_seed(4242))
    vae.eval()
    vae.save_pretrained(VAE_DIR, safe_serialization=True)
    vcfg = dict(vae.config)
    sd = {}
    for k, v in vae.state_dict().items():
        nk, is_lin = ldm_names.vae_key(k, vcfg)
        if is_lin and nk.endswith(".weight"):
            v = v.reshape(*v.shape, 1, 1)  # LDM stores the attention projections as 1x1 convs
        sd[nk] = v.detach().half().contiguous()
    save_file(sd, VAE_LDM, metadata={"format": "pt"})
    # Our name table against diffusers' own converter: every tensor equal.
    back = convert_ldm_vae_checkpoint({"first_stage_model." + k: v.float() for k, v in load_file(VAE_LDM).items()},
                                      vcfg)
    ref_sd = vae.state_dict()
    assert set(back) == set(ref_sd), set(back) ^ set(ref_sd)
    for k in ref_sd:
        assert torch.equal(back[k].reshape(ref_sd[k].shape), ref_sd[k]), k
    vae_pipe = load_pipe(vae=AutoencoderKL.from_pretrained(VAE_DIR))
    prompt, negative = "a red fox in the snow", "blurry"
    add("vae", prompt, negative, 2, run(vae_pipe, prompt, negative, 2), vae="tiny_vae")
    del vae_pipe

    # ---- 3. textual inversion.
    os.makedirs(EMB_DIR, exist_ok=True)
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    gen = torch.Generator("cpu").manual_seed(999)
    # The token table's rows are N(0, 0.02) (initializer_range): embeddings of that size are ordinary
    # words; these are drawn larger (N(0, 1)) so that a wrong row moves the image.
    one = torch.randn((width,), generator=gen)
    two = torch.randn((2, width), generator=gen)
    f_one = os.path.join(EMB_DIR, "tiny-obj.safetensors")  # diffusers' form: {token: [768]}
    f_two = os.path.join(EMB_DIR, "tiny-style.safetensors")  # A1111's form: emb_params [n, 768]
    save_file({"tiny-obj": one.contiguous()}, f_one)
    save_file({"emb_params": two.contiguous()}, f_two, metadata={"name": "tiny-style"})  # one key: safetensors orders several at random
    ti = load_pipe()
    ti.load_textual_inversion(f_one, token="tiny-obj")
    ti.load_textual_inversion(f_two, token="tiny-style")
    prompt, negative = "a photo of tiny-obj on a table, tiny-style", "tiny-style blurry"
    add("embeddings", prompt, negative, 1, run(ti, prompt, negative, 1),
        embeddings=["tiny-obj.safetensors", "tiny-style.safetensors"])
    # The same prompt without the embeddings: the test checks that they change the image.
    add("embeddings_none", prompt, negative, 1, run(pipe, prompt, negative, 1))
    with torch.no_grad():
        # encode_prompt expands the multi-vector token itself (maybe_convert_prompt), as the pipeline.
        emb, _ = ti.encode_prompt([prompt], "cpu", 1, False)
        tensors["embeddings.prompt_embeds"] = emb.contiguous()
    ids = ti.tokenizer(ti.maybe_convert_prompt(prompt, ti.tokenizer)).input_ids
    print("ids with embeddings:", ids)

    save_file(tensors, os.path.join(GOLDEN, "model_options.safetensors"),
              metadata={"made_by": "tests/reference/make_model_goldens.py", "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__, "torch": torch.__version__,
                        "runs": json.dumps(runs), "call": json.dumps(CALL),
                        "how": "StableDiffusionPipeline.from_pretrained(tests/data/tiny_sd/diffusers), DDIM, "
                               "generator=torch.Generator('cpu').manual_seed(seed); image_uint8 NHWC = "
                               "(output_type='np' * 255).round(); clip_skipN.prompt_embeds = "
                               "encode_prompt([prompt, 'fog'], clip_skip=N-1 or None) [2,77,8]"})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    main()
