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


LORA_RANK, LORA_ALPHA = 4, 2.0  # alpha/rank = 0.5, so a loader that ignores alpha is caught
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                "conv1", "conv2", "time_emb_proj"]  # linears, 1x1 convs (proj_in/out) and 3x3 convs (conv1/2)
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def kohya_name(peft_key):
    """diffusers/PEFT key -> kohya's (sd-scripts) name: the module path with '_' for '.', under
    lora_unet_ / lora_te_ (whose text-encoder paths start text_model_), lora_down/lora_up for A/B."""
    comp, rest = peft_key.split(".", 1)
    module, kind = rest.rsplit(".lora_", 1)
    down_up = {"A.weight": "lora_down.weight", "B.weight": "lora_up.weight"}[kind]
    if comp == "unet":
        return "lora_unet_" + module.replace(".", "_"), down_up
    if not module.startswith("text_model."):
        module = "text_model." + module  # transformers 5 dropped the level; kohya names keep it
    return "lora_te_" + module.replace(".", "_"), down_up


def lora(tensors, add):
    from peft import LoraConfig, inject_adapter_in_model, __version__ as peft_version
    from peft.utils import get_peft_model_state_dict
    lora_dir = os.path.join(DATA, "lora")
    os.makedirs(lora_dir, exist_ok=True)
    src = load_pipe()
    alias_text_model(src)
    src.unet.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=UNET_TARGETS,
                                    init_lora_weights=False))
    # transformers 5.24's add_adapter demands peft >= 0.22, newer than PyPI's newest (0.21.2): the
    # adapter goes in with peft's own inject_adapter_in_model, which add_adapter calls.
    inject_adapter_in_model(LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=TE_TARGETS,
                                       init_lora_weights=False), src.text_encoder, adapter_name="default")
    gen = torch.Generator("cpu").manual_seed(2468)
    with torch.no_grad():
        for model in (src.unet, src.text_encoder):
            for name, p in model.named_parameters():
                if "lora_" in name:  # both factors N(0, 1/fan_in): a delta of the weights' own size
                    p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.numel() // p.shape[0]))
    unet_sd = get_peft_model_state_dict(src.unet)
    te_sd = get_peft_model_state_dict(src.text_encoder)
    meta = lambda m: m.peft_config["default"].to_dict()  # noqa: E731 (peft's own config of the adapter)
    StableDiffusionPipeline.save_lora_weights(lora_dir, unet_lora_layers=unet_sd, text_encoder_lora_layers=te_sd,
                                              weight_name="tiny_lora_peft.safetensors",
                                              unet_lora_adapter_metadata=meta(src.unet),
                                              text_encoder_lora_adapter_metadata=meta(src.text_encoder))
    peft_file = os.path.join(lora_dir, "tiny_lora_peft.safetensors")
    kohya = {}
    for k, v in load_file(peft_file).items():
        name, down_up = kohya_name(k)
        kohya[f"{name}.{down_up}"] = v
        kohya[f"{name}.alpha"] = torch.tensor(LORA_ALPHA, dtype=torch.float32)
    kohya_file = os.path.join(lora_dir, "tiny_lora_kohya.safetensors")
    save_file(kohya, kohya_file, metadata={"ss_network_dim": str(LORA_RANK)})
    print("lora:", len(unet_sd), "unet +", len(te_sd), "text encoder tensors; peft", peft_version)
    del src

    prompt, negative = "a castle on a hill, watercolor", "blurry"
    images = {}
    for form, f in (("peft", peft_file), ("kohya", kohya_file)):
        for scale in (1.0, 0.5):
            pipe = load_pipe()
            pipe.load_lora_weights(f, adapter_name="x")
            pipe.set_adapters(["x"], adapter_weights=[scale])
            images[(form, scale)] = run(pipe, prompt, negative, 1)
            # fuse_lora merges W += scale * (alpha/r) * B @ A, what we do at load: the same image
            pipe.fuse_lora(lora_scale=1.0)
            pipe.unload_lora_weights()
            fused = run(pipe, prompt, negative, 1)
            assert (fused.int() - images[(form, scale)].int()).abs().max() <= 1, (form, scale)
    for scale in (1.0, 0.5):
        # diffusers' kohya converter reads our kohya file as the PEFT one: the conversion holds
        d = (images[("peft", scale)].int() - images[("kohya", scale)].int()).abs()
        assert d.max() <= 1, ("kohya vs peft", scale, int(d.max()))
        key = f"lora{scale:g}"
        add(key, prompt, negative, 1, images[("peft", scale)], lora_scale=scale)
    add("lora_none", prompt, negative, 1, run(load_pipe(), prompt, negative, 1))


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

    # ---- 4. LoRA.
    lora(tensors, add)

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
