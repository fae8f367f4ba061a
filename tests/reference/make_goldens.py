#!/usr/bin/env python3
"""Makes the tiny random-weight SD v1 test models (tests/data/tiny_sd/) and the golden outputs of the
reference implementations (tests/data/golden/). See tests/reference/README.md for what each file holds.

Usage (from the repository root):
    /tmp/refenv/bin/python tests/reference/make_goldens.py [--bpe weights/bpe_simple_vocab_16e6.txt.gz]
                                                          [--clip-sdist /path/openai-clip-1.0.1.tar.gz]
"""
import argparse
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
import types

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_vocab  # noqa: E402
import derived_models  # noqa: E402
import ldm_names  # noqa: E402
import randn_ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL_DIR = os.path.join(ROOT, "tests", "data", "tiny_sd")
GOLDEN_DIR = os.path.join(ROOT, "tests", "data", "golden")

MODEL_SEED = 1234  # torch.manual_seed before building the models
INIT_SEED = 5678   # generator for the re-initialisation of every parameter

CLIP_HIDDEN = 8    # 2 heads x 4; differs from the UNet's 16 channels at level 0 (kept small: the 49408-row table dominates the files)
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, center_input_sample=False,
    flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    only_cross_attention=False, block_out_channels=(16, 32, 32, 32), layers_per_block=2,
    downsample_padding=1, mid_block_scale_factor=1, act_fn="silu", norm_num_groups=8, norm_eps=1e-5,
    cross_attention_dim=CLIP_HIDDEN, attention_head_dim=2,  # SD v1 semantics: this is the number of heads
    use_linear_projection=False, upcast_attention=False,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(16, 32, 32, 32), layers_per_block=2, act_fn="silu", latent_channels=4,
    norm_num_groups=8, sample_size=128, scaling_factor=0.18215,
)
CLIP_CONFIG = dict(
    vocab_size=49408, hidden_size=CLIP_HIDDEN, intermediate_size=4 * CLIP_HIDDEN, num_hidden_layers=2,
    num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    attention_dropout=0.0, dropout=0.0, projection_dim=CLIP_HIDDEN,
    # as in SD v1.5's text_encoder/config.json (they only matter for the pooled output, unused by SD)
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
SCHED_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
    prediction_type="epsilon",
)

MANIFEST = {}
OUR_GOLDENS = {"clip.safetensors", "unet.safetensors", "vae.safetensors", "pipeline.safetensors",
               "randn.safetensors", "blocks.safetensors", "manifest.json"}


def reinit(model, gen):
    """Every parameter gets seeded random values: nothing identity, nothing zero.
    Matrices/convs: N(0, 1/fan_in) keeps activations O(1); norm gains 1+0.2N; biases 0.1N."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.ndim >= 2:
                p.copy_(r / math.sqrt(p.numel() // p.shape[0]))
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.2 * r)
            else:
                p.copy_(0.1 * r)


def load_bpe(args):
    if args.bpe and os.path.exists(args.bpe):
        with open(args.bpe, "rb") as f:
            return f.read(), args.bpe
    if args.clip_sdist:
        with tarfile.open(args.clip_sdist) as t:
            m = next(m for m in t.getmembers() if m.name.endswith("clip/bpe_simple_vocab_16e6.txt.gz"))
            return t.extractfile(m).read(), args.clip_sdist + ":" + m.name
    sys.exit("need --bpe (bpe_simple_vocab_16e6.txt.gz) or --clip-sdist (openai-clip sdist)")


def openai_simple_tokenizer(args, bpe_bytes):
    """OpenAI's own SimpleTokenizer from the openai-clip sdist, as an independent check of the vocab files."""
    if not args.clip_sdist:
        return None
    with tarfile.open(args.clip_sdist) as t:
        m = next(m for m in t.getmembers() if m.name.endswith("clip/simple_tokenizer.py"))
        src = t.extractfile(m).read().decode("utf-8")
    mod = types.ModuleType("openai_simple_tokenizer")
    mod.__file__ = "/nonexistent/simple_tokenizer.py"
    exec(compile(src, "simple_tokenizer.py", "exec"), mod.__dict__)
    tmp = tempfile.NamedTemporaryFile(suffix=".gz", delete=False)
    tmp.write(bpe_bytes)
    tmp.close()
    return mod.SimpleTokenizer(tmp.name)


def build_models(tmpdir, bpe_bytes):
    torch.manual_seed(MODEL_SEED)
    gen = torch.Generator().manual_seed(INIT_SEED)
    text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG)).eval()
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    for m in (text_encoder, unet, vae):
        reinit(m, gen)
    vocab_path, merges_path = os.path.join(tmpdir, "vocab.json"), os.path.join(tmpdir, "merges.txt")
    clip_vocab.write(bpe_bytes, vocab_path, merges_path)
    # the special-token settings of SD v1.5's tokenizer/tokenizer_config.json
    tokenizer = CLIPTokenizer(vocab_path, merges_path, errors="replace", unk_token="<|endoftext|>",
                              bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                              model_max_length=77)
    scheduler = DDIMScheduler(**SCHED_CONFIG)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ldm_extras(sd):
    """Tensors real LDM files carry that a loader must ignore (or at least not mistake for weights)."""
    extra = {}
    extra[ldm_names.CLIP_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    extra["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)            # 0-d tensor
    extra["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)        # 0-d int tensor
    # a flattened-name EMA copy that differs from the live weight: using it would be a bug
    w = sd[ldm_names.UNET_PREFIX + "time_embed.0.weight"]
    extra["model_ema.diffusion_modeltime_embed0weight"] = w + 1.0
    # the DDPM buffers LDM registers (computed in float64 as LDM does, stored as float32)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1.0 - betas, 0)
    extra["betas"] = betas.float()
    extra["alphas_cumprod"] = ac.float()
    extra["alphas_cumprod_prev"] = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]]).float()
    return extra


def save_ldm(pipe):
    unet_sd = pipe.unet.state_dict()
    vae_sd = pipe.vae.state_dict()
    clip_sd = pipe.text_encoder.state_dict()
    sd = ldm_names.to_ldm(unet_sd, dict(pipe.unet.config), vae_sd, dict(pipe.vae.config), clip_sd)
    sd.update(ldm_extras(sd))
    sd = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    p32 = os.path.join(MODEL_DIR, "tiny_sd.safetensors")
    p16 = os.path.join(MODEL_DIR, "tiny_sd_fp16.safetensors")
    save_file(sd, p32, metadata={"format": "pt"})
    sd16 = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    save_file(sd16, p16, metadata={"format": "pt"})
    # Not committed: the build writes both again from the folder and checks these hashes.
    derived_models.record(p32)
    derived_models.record(p16)
    # What tensor shapes cannot tell (heads, GroupNorm groups), for sd-gen's loader: a sidecar
    # "<file>.json" as weights/README.md describes. Real SD v1 files need none.
    sidecar = {
        "unet": {"attention_head_dim": pipe.unet.config.attention_head_dim,
                 "norm_num_groups": pipe.unet.config.norm_num_groups},
        "vae": {"norm_num_groups": pipe.vae.config.norm_num_groups,
                "scaling_factor": pipe.vae.config.scaling_factor},
        "text_encoder": {"num_attention_heads": pipe.text_encoder.config.num_attention_heads},
    }
    for p in (p32, p16):
        with open(p + ".json", "w") as f:
            json.dump(sidecar, f, indent=1)
    return p32, p16


def assert_same(name, got, want, exact=True):
    assert set(got) == set(want), f"{name}: key sets differ: {sorted(set(got) ^ set(want))[:10]}"
    for k in want:
        g, w = got[k], want[k]
        assert g.shape == w.shape, f"{name}.{k}: shape {tuple(g.shape)} != {tuple(w.shape)}"
        if exact:
            assert torch.equal(g.to(w.dtype), w), f"{name}.{k}: values differ"
        else:
            assert torch.equal(g, w.to(g.dtype)), f"{name}.{k}: values differ"


def verify_ldm(pipe, p32, p16, diffusers_dir):
    """Independent proof of our name mapping: diffusers' own single-file converters must give back
    exactly the original tensors."""
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    ckpt = load_file(p32)
    unet_sd = pipe.unet.state_dict()
    vae_sd = pipe.vae.state_dict()
    clip_sd = pipe.text_encoder.state_dict()
    assert_same("unet", convert_ldm_unet_checkpoint(ckpt, dict(pipe.unet.config)), unet_sd)
    assert_same("vae", convert_ldm_vae_checkpoint(ckpt, dict(pipe.vae.config)), vae_sd)
    conv_clip = convert_ldm_clip_checkpoint(ckpt)
    conv_clip.pop("text_model.embeddings.position_ids")  # a buffer, not in transformers' state dict
    assert_same("clip", conv_clip, clip_sd)
    # the whole single-file pipeline loader, with our diffusers folder as the config source
    for path, dtype in ((p32, torch.float32), (p16, torch.float16)):
        sf = StableDiffusionPipeline.from_single_file(path, config=diffusers_dir, local_files_only=True,
                                                      torch_dtype=dtype, safety_checker=None)
        for comp in ("unet", "vae", "text_encoder"):
            want = {k: v.to(dtype) for k, v in getattr(pipe, comp).state_dict().items()}
            assert_same("single_file." + comp, getattr(sf, comp).state_dict(), want)
    print("LDM files verified against diffusers' single-file converters and from_single_file (fp32, fp16)")


def verify_diffusers_dir(pipe, diffusers_dir):
    re = StableDiffusionPipeline.from_pretrained(diffusers_dir, local_files_only=True)
    for comp in ("unet", "vae", "text_encoder"):
        assert_same("diffusers_dir." + comp, getattr(re, comp).state_dict(), getattr(pipe, comp).state_dict())
    assert dict(re.scheduler.config)["set_alpha_to_one"] is False
    print("diffusers folder verified")
    return re


def add_manifest(fname, how, tensors, notes=None):
    MANIFEST[fname] = {
        "how": how,
        "tensors": {k: {"shape": list(v["t"].shape), "dtype": str(v["t"].dtype).replace("torch.", ""),
                        "layout": v["layout"]} for k, v in tensors.items()},
    }
    if notes:
        MANIFEST[fname].update(notes)
    save_file({k: v["t"].detach().contiguous() for k, v in tensors.items()}, os.path.join(GOLDEN_DIR, fname),
              metadata={"made_by": "tests/reference/make_goldens.py"})


def T(t, layout):
    return {"t": t, "layout": layout}


CLIP_PROMPTS = [
    "",
    "a photo of a cat",
    "A Painting of SQUIRRELS, eating a burger!!! (8k) -- high-detail; trending on artstation.",
    "it\u2019s \u201cquoted\u201d caf\u00e9 \u2013 na\u00efve \ufb01sh  &amp;amp;  \uff21\uff22\uff23 12345 \U0001F642 \u65e5\u672c",
    "a very long prompt " + " ".join(f"word{i} and, more" for i in range(40)),
]


def golden_clip(pipe, simple_tok):
    tok, te = pipe.tokenizer, pipe.text_encoder
    enc = tok(CLIP_PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    ids = enc.input_ids
    long_ids = torch.tensor(tok(CLIP_PROMPTS[-1]).input_ids, dtype=torch.int64)  # untruncated
    assert long_ids.numel() > 77
    # cross-checks: OpenAI's SimpleTokenizer, and a few ids known from the real SD v1 tokenizer
    assert ids[1, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407], ids[1, :7]
    assert ids[0].tolist() == [49406] + [49407] * 76
    if simple_tok is not None:
        for p, row in zip(CLIP_PROMPTS, ids.tolist()):
            ref = [49406] + simple_tok.encode(p)[:75] + [49407]
            assert row[:len(ref)] == ref and all(x == 49407 for x in row[len(ref):]), p
        assert long_ids.tolist() == [49406] + simple_tok.encode(CLIP_PROMPTS[-1]) + [49407]
        print("tokenizer agrees with OpenAI's SimpleTokenizer on all golden prompts")
    with torch.no_grad():
        out = te(ids, output_hidden_states=True)
    tensors = {"input_ids": T(ids, "[P,77] int64, padded with 49407, truncated to 77 (bos + 75 + eos)"),
               "long_prompt_ids_untruncated": T(long_ids, "[N] int64: bos + all tokens + eos of prompt 4, no truncation"),
               "last_hidden_state": T(out.last_hidden_state, "[P,77,hidden] (after the final LayerNorm)")}
    for i, h in enumerate(out.hidden_states):
        what = "token+position embeddings" if i == 0 else f"output of encoder layer {i - 1} (before final LN)"
        tensors[f"hidden_state_{i}"] = T(h, f"[P,77,hidden] {what}")
    add_manifest("clip.safetensors",
                 "CLIPTokenizer (slow, from tiny_sd/diffusers/tokenizer; ftfy installed so ftfy.fix_text cleanup ran) "
                 "with padding='max_length', max_length=77, truncation=True; CLIPTextModel(input_ids) "
                 "with no attention mask, as StableDiffusionPipeline.encode_prompt calls it.",
                 tensors, {"prompts": CLIP_PROMPTS, "text_cleanup": f"ftfy {__import__('ftfy').__version__} fix_text, "
                           "html.unescape x2, whitespace collapse, lowercase"})


def capture(model, names):
    """Forward hooks that keep each named submodule's output (first element when it returns a tuple)."""
    store, handles = {}, []
    for n in names:
        mod = model.get_submodule(n)

        def hook(_m, _i, out, n=n):
            store[n] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        handles.append(mod.register_forward_hook(hook))
    return store, handles


def golden_unet(pipe):
    unet = pipe.unet
    names = ["time_proj", "time_embedding", "conv_in"] + [f"down_blocks.{i}" for i in range(4)] + \
            ["mid_block"] + [f"up_blocks.{i}" for i in range(4)] + ["conv_norm_out"]
    g = torch.Generator().manual_seed(100)
    tensors = {}
    cases = [("sq", 16, 16, [961, 1]), ("rect", 16, 24, [999, 250])]
    for case, h, w, ts in cases:
        x = torch.randn((2, 4, h, w), generator=g)
        ctx = torch.randn((2, 77, CLIP_HIDDEN), generator=g)
        t = torch.tensor(ts, dtype=torch.int64)
        store, handles = capture(unet, names)
        with torch.no_grad():
            eps = unet(x, t, encoder_hidden_states=ctx).sample
        for hd in handles:
            hd.remove()
        # the same call with a float timestep tensor must agree exactly (the embedding casts to float)
        with torch.no_grad():
            eps_f = unet(x, t.float(), encoder_hidden_states=ctx).sample
        assert torch.equal(eps, eps_f)
        tensors[f"{case}.x"] = T(x, "NCHW [2,4,H,W] latent input")
        tensors[f"{case}.t"] = T(t, "[2] int64, one timestep per sample")
        tensors[f"{case}.context"] = T(ctx, "[2,77,cross_dim] encoder_hidden_states")
        tensors[f"{case}.eps"] = T(eps, "NCHW [2,4,H,W] UNet output (predicted noise)")
        for n in names:
            lay = "[2,C] " if n.startswith("time") else "NCHW "
            tensors[f"{case}.{n}"] = T(store[n], lay + f"output of unet.{n}" +
                                       (" (hidden states only, not the skip list)" if n.startswith("down") else ""))
    add_manifest("unet.safetensors",
                 "UNet2DConditionModel (tiny_sd) forward(x, t, encoder_hidden_states=context).sample; random "
                 "x/context from torch.Generator().manual_seed(100) drawn in order sq.x, sq.context, rect.x, "
                 "rect.context. Intermediates are forward-hook outputs of the named submodules.",
                 tensors, {"cases": {c: {"latent_hw": [h, w], "timesteps": ts} for c, h, w, ts in cases},
                           "time_proj_note": "time_proj = [cos(t f), sin(t f)] (flip_sin_to_cos), f_i = exp(-ln(1e4) i / (dim/2)), dim=16"})


def golden_vae(pipe):
    vae = pipe.vae
    sf = vae.config.scaling_factor
    # the full-resolution intermediates (up_blocks.2/3, conv_norm_out) are left out to keep the goldens small
    names = ["post_quant_conv", "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.0", "decoder.up_blocks.1"]
    g = torch.Generator().manual_seed(200)
    z = torch.randn((2, 4, 8, 8), generator=g)
    store, handles = capture(vae, names)
    with torch.no_grad():
        img = vae.decode(z / sf).sample
    for hd in handles:
        hd.remove()
    tensors = {"z": T(z, "NCHW [2,4,8,8] scaled latent as the pipeline holds it (decoder input is z / 0.18215)"),
               "image": T(img, "NCHW [2,3,64,64] decoder output before postprocessing (roughly [-1,1], unclamped)")}
    for n in names:
        tensors[n] = T(store[n], f"NCHW output of vae.{n}")
    tensors["image_uint8"] = T(((img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1) * 255).round().to(torch.uint8),
                               "NHWC [2,64,64,3] uint8 = round(clamp(image/2+0.5,0,1)*255), as diffusers' postprocess + numpy_to_pil")
    add_manifest("vae.safetensors",
                 "AutoencoderKL (tiny_sd) vae.decode(z / scaling_factor).sample (includes post_quant_conv); "
                 "z = torch.randn((2,4,8,8), generator=torch.Generator().manual_seed(200)).",
                 tensors, {"scaling_factor": sf})


QUIET_STD = 1e-3  # input std of the block goldens: variance 1e-6, the size of the GroupNorm eps values


def golden_blocks(pipe):
    """Single blocks on quiet inputs (variance ~1e-6): where a GroupNorm's eps is as large as the
    variance it normalizes, so eps 1e-6 against 1e-5 (or none) changes the output at order 1, while
    the whole-model goldens (variance ~1) would move by ~1e-5 only."""
    unet, vae = pipe.unet, pipe.vae
    g = torch.Generator().manual_seed(300)
    tensors = {}
    with torch.no_grad():
        # UNet transformer: GroupNorm eps 1e-6 (down_blocks.0.attentions.0)
        x = QUIET_STD * torch.randn((2, UNET_CONFIG["block_out_channels"][0], 8, 8), generator=g)
        ctx = torch.randn((2, 77, CLIP_HIDDEN), generator=g)
        out = unet.down_blocks[0].attentions[0](x, encoder_hidden_states=ctx).sample
        tensors["unet_transformer.x"] = T(x, f"NCHW [2,C,8,8], std {QUIET_STD}")
        tensors["unet_transformer.context"] = T(ctx, "[2,77,cross_dim] N(0,1)")
        tensors["unet_transformer.out"] = T(out, "NCHW output of unet.down_blocks[0].attentions[0] (includes its residual)")
        # UNet resnet: GroupNorm eps 1e-5 (down_blocks.0.resnets.0, norm1 sees the quiet input)
        x = QUIET_STD * torch.randn((2, UNET_CONFIG["block_out_channels"][0], 8, 8), generator=g)
        temb = torch.randn((2, 4 * UNET_CONFIG["block_out_channels"][0]), generator=g)
        out = unet.down_blocks[0].resnets[0](x, temb)
        tensors["unet_resnet.x"] = T(x, f"NCHW [2,C,8,8], std {QUIET_STD}")
        tensors["unet_resnet.temb"] = T(temb, "[2,time_embed_dim] N(0,1), the time embedding before the block's SiLU")
        tensors["unet_resnet.out"] = T(out, "NCHW output of unet.down_blocks[0].resnets[0](x, temb)")
        # VAE resnet: GroupNorm eps 1e-6 (decoder.mid_block.resnets.0)
        x = QUIET_STD * torch.randn((2, VAE_CONFIG["block_out_channels"][-1], 8, 8), generator=g)
        out = vae.decoder.mid_block.resnets[0](x, None)
        tensors["vae_resnet.x"] = T(x, f"NCHW [2,C,8,8], std {QUIET_STD}")
        tensors["vae_resnet.out"] = T(out, "NCHW output of vae.decoder.mid_block.resnets[0](x)")
    add_manifest("blocks.safetensors",
                 "Single blocks of the tiny models called directly (torch.no_grad) on quiet inputs, "
                 f"x = {QUIET_STD} * torch.randn(..., generator=torch.Generator().manual_seed(300)) drawn in the "
                 "order listed; they pin each GroupNorm's eps.", tensors)


PIPE_RUNS = [
    dict(name="run0", prompt="a photo of a cat", negative_prompt=None, steps=5, guidance=7.5, height=64,
         width=64, num_images_per_prompt=2, seed=42),
    dict(name="run1", prompt="a red house by the lake, oil painting", negative_prompt="blurry, low quality",
         steps=7, guidance=7.5, height=64, width=64, num_images_per_prompt=2, seed=1234),
    dict(name="run2", prompt=["a cat", "a dog"], negative_prompt=None, steps=4, guidance=5.0, height=64,
         width=128, num_images_per_prompt=1, seed=7),
    # guidance 1: diffusers skips the unconditional half; tall (the other orientation from run2); batch 3
    dict(name="run3", prompt="a lighthouse at dusk", negative_prompt=None, steps=4, guidance=1.0, height=128,
         width=64, num_images_per_prompt=3, seed=99),
    # run4 and run5 are two separate calls, as sd-gen runs the two lines of one prompt file (each line its
    # own seed and noise): the C++ test writes both lines into one file and checks the images' order
    dict(name="run4", prompt="a red fox in the snow", negative_prompt="blurry", steps=3, guidance=3.0, height=64,
         width=64, num_images_per_prompt=1, seed=11),
    dict(name="run5", prompt="a blue car on a bridge", negative_prompt=None, steps=3, guidance=3.0, height=64,
         width=64, num_images_per_prompt=2, seed=12),
]


def golden_pipeline(pipe):
    tensors, runs = {}, {}
    for r in PIPE_RUNS:
        n = r["name"]
        nprompts = len(r["prompt"]) if isinstance(r["prompt"], list) else 1
        B = nprompts * r["num_images_per_prompt"]
        shape = (B, 4, r["height"] // 8, r["width"] // 8)
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(r["seed"]))
        step_latents, unet_in, unet_out, unet_t = [], [], [], []

        def cb(_p, i, t, kw):
            step_latents.append(kw["latents"].clone())
            return kw

        def hook(_m, args, kwargs, out):
            unet_in.append(args[0].clone())
            unet_t.append(torch.as_tensor(args[1]).clone())
            unet_out.append(out[0].clone())
        hd = pipe.unet.register_forward_hook(hook, with_kwargs=True)
        ctx_store = {}
        te_hd = pipe.text_encoder.register_forward_hook(
            lambda _m, _i, out: ctx_store.setdefault("all", []).append(out[0].clone()))
        out = pipe(prompt=r["prompt"], negative_prompt=r["negative_prompt"], height=r["height"], width=r["width"],
                   num_inference_steps=r["steps"], guidance_scale=r["guidance"],
                   num_images_per_prompt=r["num_images_per_prompt"],
                   generator=torch.Generator("cpu").manual_seed(r["seed"]), output_type="np",
                   callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        hd.remove()
        te_hd.remove()
        images = torch.from_numpy(out.images)  # NHWC float in [0,1]
        timesteps = pipe.scheduler.timesteps.clone()
        # the pipeline's initial latents are exactly torch.randn with the CPU generator (init_noise_sigma = 1)
        guided = r["guidance"] > 1  # diffusers' do_classifier_free_guidance
        assert torch.equal(unet_in[0], torch.cat([noise, noise]) if guided else noise), "pipeline noise != torch.randn"
        assert len(ctx_store["all"]) == (2 if guided else 1)
        cond_ctx = ctx_store["all"][0]  # encode_prompt: prompt first, then negative (only with guidance)
        uncond_ctx = ctx_store["all"][1] if guided else None
        images_u8 = torch.from_numpy((out.images * 255).round().astype("uint8"))
        tensors[f"{n}.noise"] = T(noise, "NCHW [B,4,h,w] torch.randn(shape, generator=Generator('cpu').manual_seed(seed))")
        tensors[f"{n}.timesteps"] = T(timesteps, "[steps] int64, DDIM timesteps in the order used")
        tensors[f"{n}.context_cond"] = T(cond_ctx, "[nprompts,77,hidden] text encoder output for the prompt(s) (before repeat per image)")
        if uncond_ctx is not None:
            tensors[f"{n}.context_uncond"] = T(uncond_ctx, "[nprompts,77,hidden] text encoder output for the negative prompt ('' when none)")
        tensors[f"{n}.unet_input"] = T(torch.stack(unet_in), "[steps,2B,4,h,w] NCHW; UNet input per step, uncond half first ([steps,B,...] without guidance)")
        tensors[f"{n}.unet_output"] = T(torch.stack(unet_out), "[steps,2B,4,h,w] NCHW; UNet eps per step, uncond half first ([steps,B,...] without guidance)")
        tensors[f"{n}.latents_per_step"] = T(torch.stack(step_latents), "[steps,B,4,h,w] NCHW latents after each DDIM step")
        tensors[f"{n}.latents_final"] = T(step_latents[-1], "[B,4,h,w] NCHW final latents (scaled; VAE input is /0.18215)")
        tensors[f"{n}.image_float"] = T(images, "NHWC [B,H,W,3] float32 in [0,1] (pipeline output_type='np')")
        tensors[f"{n}.image_uint8"] = T(images_u8, "NHWC [B,H,W,3] uint8 = (image_float*255).round() as numpy_to_pil")
        runs[n] = {k: v for k, v in r.items() if k != "name"}
        runs[n]["negative_prompt_effective"] = r["negative_prompt"] or ""
        runs[n]["timesteps"] = timesteps.tolist()
        runs[n]["latent_shape_nchw"] = list(shape)
        runs[n]["batch_order"] = ("images are prompt-major: for prompt list [p0,p1] and n images each, rows are "
                                  "p0 img0..n-1, p1 img0..n-1; the UNet batch is [uncond rows..., cond rows...]")
        try:
            from PIL import Image
            for i in range(images_u8.shape[0]):
                Image.fromarray(images_u8[i].numpy()).save(os.path.join(GOLDEN_DIR, f"pipeline_{n}_{i}.png"))
        except ImportError:
            pass
    add_manifest("pipeline.safetensors",
                 "StableDiffusionPipeline (tiny_sd, DDIMScheduler with SD v1.5's config, eta=0) called with "
                 "prompt, negative_prompt, height, width, num_inference_steps, guidance_scale, num_images_per_prompt, "
                 "generator=torch.Generator('cpu').manual_seed(seed), output_type='np'; latents captured with "
                 "callback_on_step_end, UNet inputs/outputs and text encoder outputs with forward hooks. "
                 "pipeline_<run>_<i>.png are the uint8 images as PNG.",
                 tensors, {"runs": runs, "scheduler": SCHED_CONFIG})


RANDN_CASES = [(42, (5,)), (42, (16,)), (42, (17,)), (42, (100,)), (42, (1000,)), (0, (3, 4)), (1, (1,)),
               (42, (1, 4, 64, 64)), (42, (2, 4, 16, 16)), (42, (3, 4, 8, 8)), (1234, (2, 4, 16, 16)),
               (0xFFFFFFFF, (20,)), (2 ** 32 + 5, (20,))]


def shape_name(shape):
    return "x".join(str(s) for s in shape)


def golden_randn():
    tensors, cases, agree = {}, [], {}
    for seed, shape in RANDN_CASES:
        t = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
        k = f"seed{seed}_shape_{shape_name(shape)}"
        tensors[k] = T(t, f"torch.randn({shape}, generator=Generator('cpu').manual_seed({seed})), flat row-major order")
        cases.append(k)
        ref = randn_ref.torch_cpu_randn(seed, int(np.prod(shape))).reshape(shape)
        agree[k] = float(np.abs(ref - t.numpy()).max())
    # consecutive calls on one generator: the mt19937 stream continues; a pending cached double normal from
    # the <16 path carries over into the next call
    seq = [("seq_a", 7, [(2, 4, 16, 16), (2, 4, 16, 16)]), ("seq_b", 7, [(5,), (5,)]),
           ("seq_c", 7, [(5,), (20,)]), ("seq_d", 7, [(20,), (5,)]), ("seq_e", 7, [(3,), (3,), (16,)])]
    for name, seed, shapes in seq:
        g = torch.Generator("cpu").manual_seed(seed)
        rg = randn_ref.TorchCpuGenerator(seed)
        for i, s in enumerate(shapes):
            t = torch.randn(s, generator=g)
            k = f"{name}_call{i}_seed{seed}_shape_{shape_name(s)}"
            tensors[k] = T(t, f"call {i} of torch.randn on one Generator('cpu').manual_seed({seed}): shapes {shapes}")
            cases.append(k)
            agree[k] = float(np.abs(rg.randn(int(np.prod(s))) - t.numpy().ravel()).max())
    add_manifest("randn.safetensors",
                 "torch.randn(shape, generator=torch.Generator('cpu').manual_seed(seed)) float32; names "
                 "seed<S>_shape_<d0>x<d1>...; seq_* are consecutive calls on ONE generator.",
                 tensors, {"python_replica_max_abs_diff": agree,
                           "python_replica": "tests/reference/randn_ref.py (mt19937 + torch's CPU normal algorithm, "
                                             "float32 16-block path with theta = float(2pi)*u2, double <16 path with "
                                             "the cached second value); the remaining 1-2 ulp differences come from "
                                             "torch's vectorised Sleef log/sin/cos"})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpe", default=os.path.join(ROOT, "weights", "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--clip-sdist", default=None, help="openai-clip-1.0.1.tar.gz: vocab source and SimpleTokenizer check")
    args = ap.parse_args()

    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # summation order independent of the machine's core count
    os.makedirs(MODEL_DIR, exist_ok=True)
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    bpe_bytes, bpe_src = load_bpe(args)
    simple_tok = openai_simple_tokenizer(args, bpe_bytes)

    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_models(tmp, bpe_bytes)
        diffusers_dir = os.path.join(MODEL_DIR, "diffusers")
        shutil.rmtree(diffusers_dir, ignore_errors=True)
        pipe.save_pretrained(diffusers_dir, safe_serialization=True)
    p32, p16 = save_ldm(pipe)
    pipe = verify_diffusers_dir(pipe, diffusers_dir)  # from here on everything runs from the saved folder
    pipe.set_progress_bar_config(disable=True)
    verify_ldm(pipe, p32, p16, diffusers_dir)

    # other scripts also write into tests/data/golden: remove only what this script makes
    for old in os.listdir(GOLDEN_DIR):
        if old in OUR_GOLDENS or (old.startswith("pipeline_run") and old.endswith(".png")):
            os.remove(os.path.join(GOLDEN_DIR, old))
    golden_clip(pipe, simple_tok)
    golden_unet(pipe)
    golden_vae(pipe)
    golden_blocks(pipe)
    golden_pipeline(pipe)
    golden_randn()

    MANIFEST["_about"] = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "diffusers": diffusers.__version__, "numpy": np.__version__},
        "bpe_vocab_source": os.path.relpath(bpe_src, ROOT) if bpe_src.startswith(ROOT) else os.path.basename(bpe_src),
        "layouts": "torch's natural layouts: NCHW for latents/images/feature maps unless a tensor says NHWC; "
                   "C++ tests permute to NHWC. All float tensors float32 unless listed otherwise.",
        "models": "tests/data/tiny_sd (see tests/reference/README.md)",
        "threads": "torch.set_num_threads(1), use_deterministic_algorithms(True), CPU",
    }
    with open(os.path.join(GOLDEN_DIR, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(MANIFEST, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("done")


if __name__ == "__main__":
    main()
