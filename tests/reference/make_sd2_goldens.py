#!/usr/bin/env python3
"""The tiny SD 2.x test model (tests/data/tiny_sd2/) and its goldens (tests/data/golden/sd2.safetensors),
from the current releases (diffusers 0.42.1, transformers 5; see requirements-current.txt).

What makes it SD 2.x rather than SD v1 (each is a code path of sd-gen that SD v1 never takes):
- text encoder: transformers' CLIPTextModel with hidden_act "gelu" (OpenCLIP ViT-H), the tokenizer
  padding with "!" (id 0) as SD 2's tokenizer does, not with <|endoftext|>;
- UNet: use_linear_projection (proj_in/proj_out are linears), attention_head_dim as a per-level list
  (heads 1, 2, 4, 4: head widths 8, 8, 4, 4), upcast_attention (2.1's config);
- the v-prediction variant (768-v) through the same weights with the scheduler's prediction_type.
The LDM single file (fp16, as most SD 2 files people download) holds the text encoder under OpenCLIP's names (cond_stage_model.model.*: packed
in_proj_weight/in_proj_bias, ln_final, positional_embedding, text_projection) with one residual
block more than the pipeline runs, as the SD 2 files do (24 blocks, "penultimate" layer: 23 run).

Goldens (sd2.safetensors):
- cond.<name>: encode_prompt's prompt_embeds [n,77,8] for the prompts of COND (the pad id shows in
  every position after the end token), with diffusers' clip_skip None and 1;
- <key>.latents_per_unit / <key>.image_uint8 for the pipeline runs of RUNS (epsilon and v, with and
  without guidance_rescale, zero terminal SNR with six samplers, batch 2, 128x64) as make_image_goldens.py
  stores them; each run's metadata also holds fp16_spread, how far
  diffusers' own fp16 run (torch_dtype float16 on the CPU) lands from those fp32 images;
- the same for the pictures-in runs of PICTURES (img2img and inpainting with v-prediction; their
  metadata under "pictures").

Usage (from the repository root):
    /tmp/curenv/bin/python tests/reference/make_sd2_goldens.py
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import derived_models  # noqa: E402
import ldm_names  # noqa: E402
import make_goldens as mg  # noqa: E402  (reinit: nothing identity, nothing zero)
import make_sampler_goldens as msg  # noqa: E402  (SAMPLERS)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKENIZER = os.path.join(ROOT, "tests", "data", "tiny_sd_tf5", "diffusers", "tokenizer")
MODEL_DIR = os.path.join(ROOT, "tests", "data", "tiny_sd2")
FOLDER = os.path.join(MODEL_DIR, "diffusers")
LDM = os.path.join(MODEL_DIR, "tiny_sd2.safetensors")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden", "sd2.safetensors")

MODEL_SEED, INIT_SEED = 2222, 3333
CLIP_HIDDEN = 8
CLIP_CONFIG = dict(vocab_size=49408, hidden_size=CLIP_HIDDEN, intermediate_size=4 * CLIP_HIDDEN, num_hidden_layers=3,
                   num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
                   attention_dropout=0.0, dropout=0.0, projection_dim=CLIP_HIDDEN,
                   bos_token_id=0, eos_token_id=2, pad_token_id=1)  # as SD 2's text_encoder/config.json
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(8, 16, 16, 16), layers_per_block=2, norm_num_groups=4, norm_eps=1e-5,
    cross_attention_dim=CLIP_HIDDEN, attention_head_dim=(1, 2, 4, 4),  # heads per level, as SD 2's [5,10,20,20]
    use_linear_projection=True, upcast_attention=True,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 16, 16), layers_per_block=2,
    act_fn="silu", latent_channels=4, norm_num_groups=8, sample_size=128, scaling_factor=0.18215,
)
SCHED_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
                    prediction_type="epsilon")

COND = [("plain", "a castle on a hill", None), ("empty", "", None),
        ("skip", "a castle on a hill, watercolor", 1)]
CALL = dict(prompt="a castle on a hill, watercolor", negative_prompt="blurry", steps=6, guidance=7.0, width=128,
            height=64, batch=2, seed=91)
# (key, sampler, schedule, prediction, guidance_rescale)
RUNS = [("eps_ddim", "ddim", "default", "epsilon", 0.0),
        ("eps_dpmpp_2m_karras", "dpmpp_2m", "karras", "epsilon", 0.0),
        ("v_ddim", "ddim", "default", "v_prediction", 0.0), ("v_euler", "euler", "default", "v_prediction", 0.0),
        ("v_dpmpp_2m_karras", "dpmpp_2m", "karras", "v_prediction", 0.0),
        # diffusers' guidance_rescale (rescale_noise_cfg), as people use it with v models, and with epsilon
        ("v_ddim_rescale", "ddim", "default", "v_prediction", 0.7),
        ("eps_euler_a_rescale", "euler_a", "default", "epsilon", 0.5),
        # the paper's recipe for zero-terminal-SNR v models: rescaled betas, trailing timesteps (the
        # first at ᾱ = 0), guidance rescale 0.7 (the tests run it from a copy of the folder whose
        # scheduler config says so: SCHED_EXTRA)
        ("v_ddim_zero_snr", "ddim", "default", "v_prediction", 0.7),
        # the same with the other samplers whose diffusers classes take rescale_betas_zero_snr (they
        # put ᾱ = 2⁻²⁴ at the last timestep, σ_max ≈ 4096)
        ("v_euler_zero_snr", "euler", "default", "v_prediction", 0.7),
        ("v_euler_a_zero_snr", "euler_a", "default", "v_prediction", 0.7),
        ("v_dpmpp_2m_zero_snr", "dpmpp_2m", "default", "v_prediction", 0.7),
        ("v_dpmpp_2m_sde_karras_zero_snr", "dpmpp_2m_sde", "karras", "v_prediction", 0.7),
        ("v_unipc_zero_snr", "unipc", "default", "v_prediction", 0.7)]
SCHED_EXTRA = {key: {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
               for key, *_ in RUNS if key.endswith("_zero_snr")}


def build():
    torch.manual_seed(MODEL_SEED)
    gen = torch.Generator().manual_seed(INIT_SEED)
    te = CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG)).eval()
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    for m in (te, unet, vae):
        mg.reinit(m, gen)
    tok = CLIPTokenizer.from_pretrained(TOKENIZER, pad_token="!")  # SD 2's tokenizer pads with "!"
    assert tok.pad_token_id == 0, tok.pad_token_id
    # One more residual block in the LDM file than the pipeline runs (the file's last one is never used).
    extra = CLIPTextModel(CLIPTextConfig(**dict(CLIP_CONFIG, num_hidden_layers=1))).eval()
    mg.reinit(extra, gen)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=DDIMScheduler(**SCHED_CONFIG), safety_checker=None,
                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe, extra


def openclip_names(clip_sd, extra_sd, layers, prefix="cond_stage_model.model."):
    """transformers' CLIP text model -> OpenCLIP's text-tower names under `prefix` (LDM's
    FrozenOpenCLIPEmbedder: cond_stage_model.model.*; SDXL's conditioner.embedders.1.model.*).
    extra_sd: one residual block more after the model's `layers` (SD 2's files carry one the pipeline
    never runs), or None. text_projection is OpenCLIP's [hidden, projection] matrix, used as
    x @ text_projection: the transpose of transformers' text_projection.weight; a model without one
    (CLIPTextModel) gets a random one, which SD 2 never uses."""
    P = prefix
    sd = {}
    def g(k):
        return clip_sd.get("text_model." + k, clip_sd.get(k))
    sd[P + "token_embedding.weight"] = g("embeddings.token_embedding.weight")
    sd[P + "positional_embedding"] = g("embeddings.position_embedding.weight")
    sd[P + "ln_final.weight"] = g("final_layer_norm.weight")
    sd[P + "ln_final.bias"] = g("final_layer_norm.bias")
    def block(get, i, out_i):
        b = f"{P}transformer.resblocks.{out_i}."
        L = f"encoder.layers.{i}."
        sd[b + "ln_1.weight"], sd[b + "ln_1.bias"] = get(L + "layer_norm1.weight"), get(L + "layer_norm1.bias")
        sd[b + "ln_2.weight"], sd[b + "ln_2.bias"] = get(L + "layer_norm2.weight"), get(L + "layer_norm2.bias")
        sd[b + "attn.in_proj_weight"] = torch.cat([get(L + f"self_attn.{x}_proj.weight") for x in "qkv"], 0)
        sd[b + "attn.in_proj_bias"] = torch.cat([get(L + f"self_attn.{x}_proj.bias") for x in "qkv"], 0)
        sd[b + "attn.out_proj.weight"] = get(L + "self_attn.out_proj.weight")
        sd[b + "attn.out_proj.bias"] = get(L + "self_attn.out_proj.bias")
        sd[b + "mlp.c_fc.weight"], sd[b + "mlp.c_fc.bias"] = get(L + "mlp.fc1.weight"), get(L + "mlp.fc1.bias")
        sd[b + "mlp.c_proj.weight"], sd[b + "mlp.c_proj.bias"] = get(L + "mlp.fc2.weight"), get(L + "mlp.fc2.bias")
    for i in range(layers):
        block(g, i, i)
    if extra_sd is not None:
        block(lambda k: extra_sd.get("text_model." + k, extra_sd.get(k)), 0, layers)
    if "text_projection.weight" in clip_sd:
        sd[P + "text_projection"] = clip_sd["text_projection.weight"].T
    else:
        gen = torch.Generator().manual_seed(77)
        sd[P + "text_projection"] = torch.randn((CLIP_HIDDEN, CLIP_HIDDEN), generator=gen)  # unused by SD
    sd[P + "logit_scale"] = torch.tensor(4.6052)
    return sd


def save(pipe, extra):
    shutil.rmtree(MODEL_DIR, ignore_errors=True)
    pipe.save_pretrained(FOLDER, safe_serialization=True)
    # The same JSON value without transformers' indentation (3.6 MB -> 1.7 MB).
    tj = os.path.join(FOLDER, "tokenizer", "tokenizer.json")
    with open(tj) as f:
        value = json.load(f)
    with open(tj, "w") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
    # Not committed: the build writes it again (tests/tools/derive_test_models.cpp) from
    # tiny_sd_tf5's tokenizer.json (make_layout_goldens.py, the same vocabulary from transformers 5)
    # with OpenCLIP's pad token "!" (id 0) put first among the added tokens, the only difference.
    with open(tj, "rb") as f:
        ours = f.read()
    with open(os.path.join(ROOT, "tests", "data", "tiny_sd_tf5", "diffusers", "tokenizer", "tokenizer.json"), "rb") as f:
        tf5 = f.read()
    at = tf5.index(b'"added_tokens":[') + len(b'"added_tokens":[')
    pad = b'{"id":0,"content":"!","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},'
    assert ours == tf5[:at] + pad + tf5[at:], "tokenizer.json is no longer tiny_sd_tf5's plus the pad token"
    derived_models.record(tj)
    clip_sd = pipe.text_encoder.state_dict()
    sd = ldm_names.to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config), pipe.vae.state_dict(),
                          dict(pipe.vae.config), clip_sd)
    sd = {k: v for k, v in sd.items() if not k.startswith(ldm_names.CLIP_PREFIX)}
    sd.update(openclip_names(clip_sd, extra.state_dict(), CLIP_CONFIG["num_hidden_layers"]))
    sd = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    save_file({k: v.half() for k, v in sd.items()}, LDM, metadata={"format": "pt"})
    # What the tensors cannot tell: the heads (SD 2's files have 64-wide heads, this tiny one not),
    # the GroupNorm groups and the text encoder's heads; the prediction type is given per run.
    with open(LDM + ".json", "w") as f:
        json.dump({"unet": {"attention_head_dim": list(UNET_CONFIG["attention_head_dim"]), "norm_num_groups": 4},
                   "vae": {"norm_num_groups": 8}, "text_encoder": {"num_attention_heads": 2}}, f, indent=1)
    # Independent proof of the OpenCLIP names: diffusers' own converters give the weights back
    # (its SD 2 converter skips block 23 by name; here the unused block is the last of a tiny file).
    from diffusers.loaders.single_file_utils import (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
                                                     convert_open_clip_checkpoint)
    ckpt = sd  # the fp32 values; the file holds them rounded to fp16
    assert all(torch.equal(load_file(LDM)[k], v.half()) for k, v in sd.items())
    last = f"cond_stage_model.model.transformer.resblocks.{CLIP_CONFIG['num_hidden_layers']}."
    te_conv = convert_open_clip_checkpoint(pipe.text_encoder, {k: v for k, v in ckpt.items() if not k.startswith(last)})
    te_conv.pop("text_projection.weight", None)
    want = {("text_model." + k if not k.startswith("text_model.") else k): v for k, v in clip_sd.items()}
    got = {("text_model." + k if not k.startswith("text_model.") else k): v for k, v in te_conv.items()}
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:8]
    assert all(torch.equal(got[k], want[k]) for k in want), "OpenCLIP names give other weights"
    for name, conv, ref in (("unet", convert_ldm_unet_checkpoint(ckpt, dict(pipe.unet.config)), pipe.unet.state_dict()),
                            ("vae", convert_ldm_vae_checkpoint(ckpt, dict(pipe.vae.config)), pipe.vae.state_dict())):
        assert set(conv) == set(ref) and all(torch.equal(conv[k], ref[k]) for k in ref), name
    print("LDM file verified against diffusers' converters")


def cond_goldens(pipe, tensors):
    out = []
    for name, prompt, skip in COND:
        ids = pipe.tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        if skip is None:
            emb, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        else:
            # encode_prompt's clip_skip branch, written out: diffusers 0.42.1 reaches for
            # text_encoder.text_model, which transformers 5's CLIPTextModel no longer has.
            with torch.no_grad():
                hs = pipe.text_encoder(torch.tensor([ids]), output_hidden_states=True).hidden_states
                emb = pipe.text_encoder.final_layer_norm(hs[-(skip + 1)])
        tensors[f"cond.{name}"] = emb.float()
        tensors[f"cond.{name}.ids"] = torch.tensor(ids, dtype=torch.int32)
        out.append({"name": name, "prompt": prompt, "clip_skip": skip})
    return out


def run_goldens(pipe, tensors):
    runs = []
    base = dict(pipe.scheduler.config)
    for key, sampler, schedule, pred, rescale in RUNS:
        cls, extra, _ = msg.SAMPLERS[sampler]
        cfg = dict(base, **extra, **SCHED_EXTRA.get(key, {}), prediction_type=pred)
        if schedule == "karras":
            cfg["use_karras_sigmas"] = True
        pipe.scheduler = cls.from_config(cfg)
        if key in SCHED_EXTRA:
            assert pipe.scheduler.alphas_cumprod[-1] in (0, 2**-24) and pipe.scheduler.timesteps[0] == 999
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = pipe(prompt=CALL["prompt"], negative_prompt=CALL["negative_prompt"], height=CALL["height"],
                   width=CALL["width"], num_inference_steps=CALL["steps"], guidance_scale=CALL["guidance"],
                   num_images_per_prompt=CALL["batch"], generator=torch.Generator("cpu").manual_seed(CALL["seed"]),
                   guidance_rescale=rescale, output_type="np", callback_on_step_end=cb,
                   callback_on_step_end_tensor_inputs=["latents"])
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8")))
        runs.append(dict(CALL, key=key, sampler=sampler, schedule=schedule, prediction_type=pred,
                         guidance_rescale=rescale, scheduler_config=SCHED_EXTRA.get(key, {}), units=len(lat)))
        print(key, len(lat), "units")
    pipe.scheduler = DDIMScheduler(**SCHED_CONFIG)
    return runs


# Pictures in, with the v-prediction model as SD 2.x 768-v is used: (key, pipeline, sampler, schedule,
# strength, mask or None); the picture tests/data/images/init_128x64.png, CALL's prompts and seed.
PICTURES = [("v_img2img_ddim", "img2img", "ddim", "default", 0.6, None),
            ("v_inpaint_euler", "inpaint", "euler", "default", 0.75, "tests/data/images/mask_128x64.png")]
PICTURE = "tests/data/images/init_128x64.png"


def picture_goldens(pipe, tensors):
    """StableDiffusionImg2ImgPipeline / StableDiffusionInpaintPipeline (a 4-channel UNet: the kept region
    renoised and blended back after every step) on the same components with v-prediction: the latents
    after every unit and the images."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline
    from PIL import Image
    image = Image.open(os.path.join(ROOT, PICTURE)).convert("RGB")
    runs = []
    for key, kind, sampler, schedule, strength, mask in PICTURES:
        cls, extra, _ = msg.SAMPLERS[sampler]
        cfg = dict(pipe.scheduler.config, **extra, prediction_type="v_prediction")
        if schedule == "karras":
            cfg["use_karras_sigmas"] = True
        parts = dict(pipe.components, scheduler=cls.from_config(cfg))
        args = dict(prompt=CALL["prompt"], negative_prompt=CALL["negative_prompt"], image=image, strength=strength,
                    num_inference_steps=CALL["steps"], guidance_scale=CALL["guidance"],
                    num_images_per_prompt=CALL["batch"], generator=torch.Generator("cpu").manual_seed(CALL["seed"]))
        if kind == "inpaint":
            p = StableDiffusionInpaintPipeline(**parts)
            args.update(mask_image=Image.open(os.path.join(ROOT, mask)).convert("L"), height=CALL["height"],
                         width=CALL["width"])
        else:
            p = StableDiffusionImg2ImgPipeline(**parts)
        p.set_progress_bar_config(disable=True)
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = p(**args, output_type="np", callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8")))
        runs.append(dict(CALL, key=key, pipeline=kind, sampler=sampler, schedule=schedule,
                         prediction_type="v_prediction", guidance_rescale=0.0, image=PICTURE, mask=mask,
                         strength=strength, units=len(lat)))
        print(key, len(lat), "units")
    return runs


LORA_DIR = os.path.join(ROOT, "tests", "data", "lora")
LORA_RANK, LORA_ALPHA = 2, 1.0  # alpha/rank = 0.5, so a loader that ignores alpha is caught
# proj_in / proj_out are linears in SD 2 (use_linear_projection): their LoRA factors are 2-D.
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                "conv2", "time_emb_proj"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
EXTRAS_LIKE = "v_euler"  # the run the LoRA and embedding runs repeat
EMBEDDING = os.path.join(ROOT, "tests", "data", "embeddings", "tiny-sd2.safetensors")
EMB_TOKEN, EMB_PROMPT = "<tiny-sd2>", "a <tiny-sd2> castle on a hill, watercolor"


def like_run(pipe, tensors, key, prompt=CALL["prompt"], **more):
    """EXTRAS_LIKE's call on `pipe` (its scheduler set here) with the arguments `more`, stored under `key`."""
    _, sampler, schedule, pred, rescale = next(r for r in RUNS if r[0] == EXTRAS_LIKE)
    cls, extra, _ = msg.SAMPLERS[sampler]
    pipe.scheduler = cls.from_config(dict(pipe.scheduler.config, **extra, prediction_type=pred))
    pipe.set_progress_bar_config(disable=True)
    lat = []

    def cb(_p, i, t, kw):
        lat.append(kw["latents"].clone())
        return kw
    out = pipe(prompt=prompt, negative_prompt=CALL["negative_prompt"], height=CALL["height"], width=CALL["width"],
               num_inference_steps=CALL["steps"], guidance_scale=CALL["guidance"], num_images_per_prompt=CALL["batch"],
               generator=torch.Generator("cpu").manual_seed(CALL["seed"]), guidance_rescale=rescale,
               output_type="np", callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"], **more)
    image = torch.from_numpy(np.ascontiguousarray((out.images * 255).round().astype("uint8")))
    tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float()
    tensors[f"{key}.image_uint8"] = image
    assert (image.int() - tensors[f"{EXTRAS_LIKE}.image_uint8"].int()).abs().max() > 8, key + " changed nothing"
    return len(lat)


def kohya_name(peft_key):
    """diffusers/PEFT key -> kohya's sd-scripts name for SD 1.x/2.x: the UNet under diffusers' module
    paths (sd-scripts trains SD 1/2 on diffusers' UNet; only its SDXL names are the original ones), the
    text encoder (OpenCLIP, which sd-scripts converts to transformers' CLIPTextModel names) as
    lora_te_text_model_*; '_' for '.', lora_down/lora_up for A/B."""
    comp, rest = peft_key.split(".", 1)
    module, kind = rest.rsplit(".lora_", 1)
    down_up = {"A.weight": "lora_down.weight", "B.weight": "lora_up.weight"}[kind]
    if comp == "unet":
        return "lora_unet_" + module.replace(".", "_"), down_up
    if not module.startswith("text_model."):
        module = "text_model." + module  # transformers 5 dropped the level; kohya names keep it
    return "lora_te_" + module.replace(".", "_"), down_up


def load_folder():
    return StableDiffusionPipeline.from_pretrained(FOLDER, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)


def lora_goldens(tensors):
    """A LoRA on the UNet (attention, linear proj_in/proj_out, feed-forward, resnet convs, time
    projections) and the text encoder, saved by diffusers (PEFT names) and rewritten in kohya's names;
    the PEFT file loaded with load_lora_weights and fused (W += (alpha/r)·B·A, what sd-gen merges at
    load), EXTRAS_LIKE's call: the golden for both files (the same deltas)."""
    import math
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from make_sdxl_goldens import save_sorted
    src = load_folder()
    src.unet.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=UNET_TARGETS,
                                    init_lora_weights=False))
    inject_adapter_in_model(LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=TE_TARGETS,
                                       init_lora_weights=False), src.text_encoder, adapter_name="default")
    gen = torch.Generator("cpu").manual_seed(2468)
    with torch.no_grad():
        for model in (src.unet, src.text_encoder):
            for name, p in model.named_parameters():
                if "lora_" in name:  # both factors N(0, 1/fan_in): a delta of the weights' own size
                    p.copy_((torch.randn(p.shape, generator=gen) / math.sqrt(p.numel() // p.shape[0])).half().float())
    layers = [get_peft_model_state_dict(m) for m in (src.unet, src.text_encoder)]
    meta = [m.peft_config["default"].to_dict() for m in (src.unet, src.text_encoder)]
    StableDiffusionPipeline.save_lora_weights(LORA_DIR, unet_lora_layers=layers[0], text_encoder_lora_layers=layers[1],
                                              weight_name="tiny_sd2_lora_peft.safetensors",
                                              unet_lora_adapter_metadata=meta[0],
                                              text_encoder_lora_adapter_metadata=meta[1])
    peft_file = os.path.join(LORA_DIR, "tiny_sd2_lora_peft.safetensors")
    from safetensors import safe_open
    with safe_open(peft_file, "pt") as f:
        peft_meta = f.metadata()
    # The same bytes on every run: peft's target_modules are a set, written again sorted.
    adapter = json.loads(peft_meta["lora_adapter_metadata"])
    adapter = {k: sorted(v) if k.endswith("target_modules") and isinstance(v, list) else v for k, v in adapter.items()}
    peft_meta["lora_adapter_metadata"] = json.dumps(adapter, indent=2, sort_keys=True)
    save_sorted(load_file(peft_file), peft_file, peft_meta)
    kohya = {}
    for k, v in load_file(peft_file).items():
        name, down_up = kohya_name(k)
        kohya[f"{name}.{down_up}"] = v
        kohya[f"{name}.alpha"] = torch.tensor(LORA_ALPHA, dtype=torch.float32)
    kohya_file = os.path.join(LORA_DIR, "tiny_sd2_lora_kohya.safetensors")
    save_sorted(kohya, kohya_file, {"ss_network_dim": str(LORA_RANK), "ss_base_model_version": "sd_v2"})
    del src
    images = {}
    for form, f in (("kohya", kohya_file), ("peft", peft_file)):  # the PEFT run is the golden
        pipe = load_folder()
        pipe.load_lora_weights(f, adapter_name="x")
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()
        units = like_run(pipe, tensors, "lora")
        images[form] = tensors["lora.image_uint8"].int()
    d = (images["peft"] - images["kohya"]).abs()
    assert d.max() <= 1, ("kohya vs peft", int(d.max()))
    print("lora:", len(kohya) // 3, "modules,", units, "units; kohya vs peft images within", int(d.max()))
    return {"key": "lora", "like": EXTRAS_LIKE, "peft": os.path.relpath(peft_file, ROOT),
            "kohya": os.path.relpath(kohya_file, ROOT), "rank": LORA_RANK, "alpha": LORA_ALPHA}


def embedding_goldens(tensors):
    """A two-vector textual-inversion file for the 1024-wide (here 8-wide) OpenCLIP text encoder, in
    A1111's safetensors form (emb_params [n, d]), loaded with load_textual_inversion; EXTRAS_LIKE's
    call with the token in the prompt."""
    gen = torch.Generator().manual_seed(4343)
    vectors = (torch.randn((2, CLIP_HIDDEN), generator=gen) * 0.5).half().float()
    save_file({"emb_params": vectors}, EMBEDDING)
    pipe = load_folder()
    pipe.load_textual_inversion(load_file(EMBEDDING)["emb_params"], token=EMB_TOKEN)
    units = like_run(pipe, tensors, "emb", prompt=EMB_PROMPT)
    print("embedding:", units, "units")
    return {"key": "emb", "like": EXTRAS_LIKE, "embedding": os.path.relpath(EMBEDDING, ROOT), "token": EMB_TOKEN,
            "prompt": EMB_PROMPT}


CONTROLNET = os.path.join(MODEL_DIR, "controlnet")
CONTROL_IMAGE, CONTROL_SCALE = "tests/data/images/control_64x96.png", 0.8


def controlnet_goldens(tensors):
    """A ControlNet of the SD 2 UNet's layout (ControlNetModel.from_unet: linear proj_in/proj_out,
    per-level heads, upcast attention, the 8-wide OpenCLIP context), every parameter random (the zero
    convolutions included, else it would change nothing), saved as a diffusers folder in fp16;
    StableDiffusionControlNetPipeline on the folder's components with it, EXTRAS_LIKE's call (v
    Euler), the control picture resized to 128x64 by diffusers (Lanczos), scale 0.8."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from PIL import Image
    base = load_folder()
    net = ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=(4, 8, 8, 8)).eval()
    mg.reinit(net, torch.Generator().manual_seed(7202))
    with torch.no_grad():  # the committed weights are fp16: the reference runs those values in fp32
        for p in net.parameters():
            p.copy_(p.half().float())
    assert net.config.use_linear_projection and net.config.upcast_attention
    shutil.rmtree(CONTROLNET, ignore_errors=True)
    net.half().save_pretrained(CONTROLNET, safe_serialization=True)
    net.float()
    pipe = StableDiffusionControlNetPipeline(**{k: v for k, v in base.components.items() if k != "image_encoder"},
                                             controlnet=net)
    units = like_run(pipe, tensors, "control", image=Image.open(os.path.join(ROOT, CONTROL_IMAGE)),
                     controlnet_conditioning_scale=CONTROL_SCALE)
    print("controlnet:", units, "units")
    return {"key": "control", "like": EXTRAS_LIKE, "controlnet": os.path.relpath(CONTROLNET, ROOT),
            "image": CONTROL_IMAGE, "scale": CONTROL_SCALE}


def fp16_spread(tensors, runs):
    """diffusers' own fp16 run (on the CPU) against its fp32 images, per run: the share of channels
    within ±1 and exact (the least over the batch) and the worst difference. The tests derive the
    fp16 bound of runs whose spread is wider than SD v1's fp16 rule allows (the v runs) from it."""
    pipe = StableDiffusionPipeline.from_pretrained(FOLDER, local_files_only=True, torch_dtype=torch.float16,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = dict(pipe.scheduler.config)
    for r in runs:
        cls, extra, _ = msg.SAMPLERS[r["sampler"]]
        cfg = dict(base, **extra, **r["scheduler_config"], prediction_type=r["prediction_type"])
        if r["schedule"] == "karras":
            cfg["use_karras_sigmas"] = True
        pipe.scheduler = cls.from_config(cfg)
        out = pipe(prompt=CALL["prompt"], negative_prompt=CALL["negative_prompt"], height=CALL["height"],
                   width=CALL["width"], num_inference_steps=CALL["steps"], guidance_scale=CALL["guidance"],
                   num_images_per_prompt=CALL["batch"], generator=torch.Generator("cpu").manual_seed(CALL["seed"]),
                   guidance_rescale=r["guidance_rescale"], output_type="np")
        im = (out.images.astype(np.float32) * 255).round().astype(np.int64)
        ref = tensors[r["key"] + ".image_uint8"].numpy().astype(np.int64)
        d = [np.abs(im[b] - ref[b]) for b in range(len(im))]
        r["fp16_spread"] = {"within1": float(min((x <= 1).mean() for x in d)),
                            "exact": float(min((x == 0).mean() for x in d)), "worst": int(max(x.max() for x in d))}
        print(r["key"], "diffusers fp16 vs fp32:", r["fp16_spread"])


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    pipe, extra = build()
    save(pipe, extra)
    # Everything from the saved files, as a user's diffusers would read them.
    pipe = StableDiffusionPipeline.from_pretrained(FOLDER, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.tokenizer.pad_token_id == 0 and pipe.text_encoder.config.hidden_act == "gelu"
    assert pipe.unet.config.use_linear_projection and pipe.unet.config.upcast_attention
    tensors = {}
    cond = cond_goldens(pipe, tensors)
    runs = run_goldens(pipe, tensors)
    fp16_spread(tensors, runs)
    pictures = picture_goldens(pipe, tensors)
    lora = lora_goldens(tensors)
    emb = embedding_goldens(tensors)
    control = controlnet_goldens(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, GOLDEN,
              metadata={"made_by": "tests/reference/make_sd2_goldens.py", "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__, "torch": torch.__version__,
                        "cond": json.dumps(cond), "runs": json.dumps(runs), "pictures": json.dumps(pictures),
                        "lora": json.dumps(lora), "embedding": json.dumps(emb), "controlnet": json.dumps(control),
                        "how": "cond.<name>: pipe.encode_prompt(prompt, clip_skip) [1,77,8]; cond.<name>.ids the "
                               "tokenizer's padded ids. <key>: StableDiffusionPipeline.from_pretrained("
                               "tests/data/tiny_sd2/diffusers), scheduler Class.from_config(its config + the "
                               "run's prediction_type and sampler settings); latents_per_unit [units,B,4,8,16], "
                               "image_uint8 NHWC [B,64,128,3]; the pictures' keys: StableDiffusionImg2ImgPipeline "
                               "/ StableDiffusionInpaintPipeline on the same components, v-prediction, the "
                               "pictures metadata's call; lora.* / emb.*: the run named by their metadata's like, "
                               "with the PEFT LoRA fused / the embedding loaded (load_textual_inversion) and its "
                               "token in the prompt; control.*: the same run with the tiny SD 2 ControlNet (controlnet metadata)"})
    print(len(cond), "conditionings,", len(runs), "runs ->", GOLDEN)
