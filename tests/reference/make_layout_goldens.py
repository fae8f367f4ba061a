#!/usr/bin/env python3
"""The checkpoint layouts today's libraries write (issue 11), with diffusers' images for them.

Builds the tiny random SD v1 pipeline exactly as make_goldens.py does (its configs, seeds and
re-initialisation, imported from it), then with the CURRENT releases pinned in
requirements-current.txt (transformers 5.x):
  tests/data/tiny_sd_tf5/diffusers/   pipe.save_pretrained(): the text encoder without "text_model.",
                                      the tokenizer as tokenizer.json only;
  tests/data/tiny_sd_tf5/tiny_sd_tf5_fp16.safetensors
                                      that folder as one LDM file, converted the way diffusers'
                                      scripts/convert_diffusers_to_original_stable_diffusion.py does
                                      with --half (so "cond_stage_model.transformer.embeddings.*");
  tests/data/golden/layouts.safetensors + layouts.json
                                      diffusers' images from both, and the transformers 5 tokenizer's
                                      ids on the tokenizer golden prompts where they differ from
                                      transformers 4 + ftfy.

Usage (from the repository root):
    python3 -m venv /tmp/curenv && /tmp/curenv/bin/pip install -r tests/reference/requirements-current.txt
    /tmp/curenv/bin/python tests/reference/make_layout_goldens.py [--bpe weights/bpe_simple_vocab_16e6.txt.gz]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
import safetensors
import tokenizers
import transformers
from diffusers import StableDiffusionPipeline
from transformers import CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import derived_models  # noqa: E402
import ldm_names  # noqa: E402
import make_goldens as mg  # noqa: E402  (configs, seeds, reinit, build_models, PIPE_RUNS)

ROOT = mg.ROOT
OUT_DIR = os.path.join(ROOT, "tests", "data", "tiny_sd_tf5")
FOLDER = os.path.join(OUT_DIR, "diffusers")
SINGLE = os.path.join(OUT_DIR, "tiny_sd_tf5_fp16.safetensors")
OLD_FOLDER = os.path.join(mg.MODEL_DIR, "diffusers")  # make_goldens.py's transformers 4 folder
GOLDEN = os.path.join(mg.GOLDEN_DIR, "layouts.safetensors")
GOLDEN_JSON = os.path.join(mg.GOLDEN_DIR, "layouts.json")
TOKENIZER_GOLDEN = os.path.join(ROOT, "tests", "data", "tokenizer", "golden.json")
RUNS = [r for r in mg.PIPE_RUNS if r["name"] in ("run0", "run1")]


def same_tensors(a, b):
    return set(a) == set(b) and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def build_pipe(tmp, bpe_bytes):
    try:
        return mg.build_models(tmp, bpe_bytes)
    except TypeError:
        # transformers 5's CLIPTokenizer takes the vocabulary itself, not file names: take the
        # parameters from make_goldens.py's models and the tokenizer from its transformers 4 folder
        # (the same vocabulary, derived from the same BPE list).
        pass
    pipe = StableDiffusionPipeline.from_pretrained(OLD_FOLDER, local_files_only=True)
    torch.manual_seed(mg.MODEL_SEED)
    gen = torch.Generator().manual_seed(mg.INIT_SEED)
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(**mg.CLIP_CONFIG)).eval()
    unet = diffusers.UNet2DConditionModel(**mg.UNET_CONFIG).eval()
    vae = diffusers.AutoencoderKL(**mg.VAE_CONFIG).eval()
    for m in (text_encoder, unet, vae):
        mg.reinit(m, gen)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=pipe.tokenizer, unet=unet,
                                   scheduler=diffusers.DDIMScheduler(**mg.SCHED_CONFIG), safety_checker=None,
                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)


def save_folder(pipe):
    shutil.rmtree(FOLDER, ignore_errors=True)
    pipe.save_pretrained(FOLDER, safe_serialization=True)
    te = load_file(os.path.join(FOLDER, "text_encoder", "model.safetensors"))
    # Not committed: the build writes it again from tiny_sd's text encoder (derived_models.py).
    derived_models.record(os.path.join(FOLDER, "text_encoder", "model.safetensors"))
    assert not any(k.startswith("text_model.") for k in te), "expected transformers 5's prefix-less names"
    tok_files = sorted(os.listdir(os.path.join(FOLDER, "tokenizer")))
    assert "tokenizer.json" in tok_files and "vocab.json" not in tok_files and "merges.txt" not in tok_files, tok_files
    # The same JSON value without the indentation (3.6 MB -> ~2 MB); everything below reads this file.
    tok_json = os.path.join(FOLDER, "tokenizer", "tokenizer.json")
    with open(tok_json, encoding="utf-8") as f:
        tj = json.load(f)
    assert isinstance(tj["model"]["merges"][0], list), "transformers 5 writes the merges as [a, b] pairs"
    with open(tok_json, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))
    # The UNet and VAE are the same tensors as make_goldens.py's folder (same seeds): link to those
    # files instead of committing a second copy; the text encoder and tokenizer are what differ.
    linked = []
    for comp in ("unet", "vae"):
        new = os.path.join(FOLDER, comp, "diffusion_pytorch_model.safetensors")
        old = os.path.join(OLD_FOLDER, comp, "diffusion_pytorch_model.safetensors")
        if os.path.exists(old) and same_tensors(load_file(new), load_file(old)):
            os.remove(new)
            os.symlink(os.path.relpath(old, os.path.dirname(new)), new)
            linked.append(comp)
    old_te = load_file(os.path.join(OLD_FOLDER, "text_encoder", "model.safetensors"))
    old_te.pop("text_model.embeddings.position_ids", None)
    same_te = same_tensors({"text_model." + k: v for k, v in te.items()}, old_te)
    return tok_files, linked, same_te


def save_single_file(pipe):
    """diffusers' convert_diffusers_to_original_stable_diffusion.py, SD v1 path, --half --use_safetensors:
    UNet and VAE renamed to the LDM names (ldm_names.py, proven against diffusers' own converters by
    make_goldens.py; VAE attention linears as [C,C,1,1]), the text encoder's keys only prefixed with
    "cond_stage_model.transformer." (its convert_text_enc_state_dict for v1: no other renaming, so
    transformers 5's names stay without "text_model."), every tensor .half()."""
    te_sd = pipe.text_encoder.state_dict()
    sd = ldm_names.to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config), pipe.vae.state_dict(),
                          dict(pipe.vae.config), {})
    for k, v in te_sd.items():
        sd["cond_stage_model.transformer." + k] = v
    sd = {k: v.detach().half().contiguous().clone() for k, v in sd.items()}
    save_file(sd, SINGLE)  # the script passes no metadata
    derived_models.record(SINGLE)  # not committed: the build writes it again (derived_models.py)
    # What shapes cannot tell, for sd-gen: the sidecar weights/README.md describes (as make_goldens.py).
    sidecar = {
        "unet": {"attention_head_dim": pipe.unet.config.attention_head_dim,
                 "norm_num_groups": pipe.unet.config.norm_num_groups},
        "vae": {"norm_num_groups": pipe.vae.config.norm_num_groups, "scaling_factor": pipe.vae.config.scaling_factor},
        "text_encoder": {"num_attention_heads": pipe.text_encoder.config.num_attention_heads},
    }
    with open(SINGLE + ".json", "w") as f:
        json.dump(sidecar, f, indent=1)
    return sd


def single_file_pipe(folder_pipe):
    """The converted file's tensors, checked and loaded into a copy of the folder's pipeline, computing
    in fp32. (diffusers 0.42's from_single_file refuses this file: its CLIP loader finds no weights
    without "text_model.", so its converters are used directly.) UNet and VAE through diffusers' own
    convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint; the text encoder by dropping the prefix the
    conversion script added. Each must give exactly the folder's tensors rounded to fp16."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
    ckpt = {k: v.float() for k, v in load_file(SINGLE).items()}
    prefix = "cond_stage_model.transformer."
    parts = {
        "unet": convert_ldm_unet_checkpoint(ckpt, dict(folder_pipe.unet.config)),
        "vae": convert_ldm_vae_checkpoint(ckpt, dict(folder_pipe.vae.config)),
        "text_encoder": {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)},
    }
    sf = StableDiffusionPipeline.from_pretrained(FOLDER, local_files_only=True)
    for comp, sd in parts.items():
        want = {k: v.half().float() for k, v in getattr(folder_pipe, comp).state_dict().items()}
        assert same_tensors(sd, want), f"{comp} in the single file differs from the fp16-rounded folder"
        getattr(sf, comp).load_state_dict(sd, strict=True)
    sf.set_progress_bar_config(disable=True)
    return sf


def images(pipe, r):
    out = pipe(prompt=r["prompt"], negative_prompt=r["negative_prompt"], height=r["height"], width=r["width"],
               num_inference_steps=r["steps"], guidance_scale=r["guidance"],
               num_images_per_prompt=r["num_images_per_prompt"],
               generator=torch.Generator("cpu").manual_seed(r["seed"]), output_type="np")
    return torch.from_numpy((out.images * 255).round().astype("uint8"))  # NHWC, as numpy_to_pil


def tokenizer_differences(pipe):
    """transformers 5's tokenizer (tokenizer.json: NFC + lowercase, no ftfy) on the tokenizer golden
    prompts, against the transformers 4 + ftfy ids recorded there."""
    tok = CLIPTokenizer.from_pretrained(os.path.join(FOLDER, "tokenizer"))
    with open(TOKENIZER_GOLDEN, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    differ = [i for i, c in enumerate(cases) if tok(c["text"], add_special_tokens=False)["input_ids"] != c["ids"]]
    return len(cases), differ


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpe", default=os.path.join(ROOT, "weights", "bpe_simple_vocab_16e6.txt.gz"))
    args = ap.parse_args()
    assert transformers.__version__.startswith("5."), "this script is for transformers 5 (requirements-current.txt)"
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    with open(args.bpe, "rb") as f:
        bpe_bytes = f.read()
    os.makedirs(OUT_DIR, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_pipe(tmp, bpe_bytes)
        tok_files, linked, same_te = save_folder(pipe)
    save_single_file(pipe)
    pipe = StableDiffusionPipeline.from_pretrained(FOLDER, local_files_only=True)  # everything from the files
    pipe.set_progress_bar_config(disable=True)
    sf = single_file_pipe(pipe)

    tensors, runs = {}, {}
    for r in RUNS:
        tensors[f"folder.{r['name']}.image_uint8"] = images(pipe, r)
        tensors[f"single_fp16.{r['name']}.image_uint8"] = images(sf, r)
        runs[r["name"]] = {k: v for k, v in r.items() if k != "name"}
    save_file({k: v.contiguous() for k, v in tensors.items()}, GOLDEN, metadata={"format": "pt"})
    ncases, differ = tokenizer_differences(pipe)
    about = {
        "how": "tests/reference/make_layout_goldens.py: the tiny pipeline of make_goldens.py saved by "
               "save_pretrained (tests/data/tiny_sd_tf5/diffusers) and converted to one fp16 LDM file as "
               "diffusers' convert_diffusers_to_original_stable_diffusion.py --half does "
               "(tests/data/tiny_sd_tf5/tiny_sd_tf5_fp16.safetensors). folder.<run>.image_uint8: "
               "StableDiffusionPipeline.from_pretrained(folder); single_fp16.<run>.image_uint8: "
               "from_single_file(file, config=folder, torch_dtype=float32), i.e. fp16-rounded weights, fp32 "
               "math. DDIM eta=0, generator=torch.Generator('cpu').manual_seed(seed), output_type='np', "
               "uint8 = (image*255).round(), NHWC [B,H,W,3].",
        "runs": runs,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "safetensors": safetensors.__version__, "numpy": np.__version__},
        "folder_tokenizer_files": tok_files,
        "unet_vae_linked_to": "tests/data/tiny_sd/diffusers" if linked == ["unet", "vae"] else linked,
        "text_encoder_equals_tiny_sd": same_te,
        "tokenizer": {
            "about": "transformers 5 CLIPTokenizer from tokenizer/tokenizer.json (normalizer NFC + lowercase, "
                     "no ftfy, no HTML unescape) on tests/data/tokenizer/golden.json's prompts: 'differ' lists the "
                     "indices of the cases whose ids (no BOS/EOS) differ from the transformers 4 + ftfy ids "
                     "recorded there; every other case gives the same ids",
            "cases": ncases, "differ": differ},
        "threads": "torch.set_num_threads(1), use_deterministic_algorithms(True), CPU",
    }
    with open(GOLDEN_JSON, "w", encoding="utf-8") as f:
        json.dump(about, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"done: linked {linked}, text encoder same as tiny_sd: {same_te}, tokenizer differs on "
          f"{len(differ)}/{ncases} golden prompts")


if __name__ == "__main__":
    main()
