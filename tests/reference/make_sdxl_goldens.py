#!/usr/bin/env python3
"""The tiny SDXL base test model (tests/data/tiny_sdxl/) and its goldens (tests/data/golden/sdxl.safetensors),
from the current releases (diffusers 0.42.1, transformers 5; see requirements-current.txt).

The model is SDXL base's layout in small, random weights (make_goldens.reinit), stored as fp16:
- text_encoder: CLIPTextModel (CLIP ViT-L's kind: quick_gelu), hidden 8, 3 layers, 2 heads;
- text_encoder_2: CLIPTextModelWithProjection (OpenCLIP bigG's kind: gelu), hidden 16, 3 layers, 2 heads,
  projection 12 (not 16, so a transposed text_projection cannot pass); its tokenizer pads with "!" (id 0);
- UNet: levels 8/16/16 channels (SDXL: 320/640/1280), the first without attention, transformer depths
  1/2/3 (SDXL: 1/2/10), heads 1/2/4 (SDXL: 5/10/20), linear projections, cross-attention 24 = 8 + 16
  (both encoders' penultimate layers side by side), the "text_time" added embedding: the pooled 12 and
  six size/crop ids of Fourier width 4 -> 36 (SDXL: 1280 + 6 * 256 = 2816);
- VAE: the SD 2 script's tiny VAE with SDXL's scaling_factor 0.13025 and force_upcast;
- EulerDiscreteScheduler as SDXL base ships it; the pipeline with force_zeros_for_empty_prompt.
The diffusers folder (tiny_sdxl/diffusers) holds no vocabulary files (sd-gen's bundled BPE is the same
vocabulary), only each tokenizer's tokenizer_config.json (pad token), so diffusers reads it with the
tokenizers passed in. The LDM single file tiny_sdxl.safetensors (fp16) uses sd_xl_base_1.0's names:
model.diffusion_model.* (label_emb.0.0/0.2 for the added embedding), first_stage_model.*,
conditioner.embedders.0.transformer.text_model.* (transformers' names) and conditioner.embedders.1.model.*
(OpenCLIP's: packed in_proj, ln_final, positional_embedding, text_projection [hidden, projection]);
its sidecar .json carries what the tensors cannot tell (heads, GroupNorm groups).

Goldens (sdxl.safetensors):
- cond.<name>.prompt_embeds [1,77,24] / .pooled_prompt_embeds [1,12] from pipe.encode_prompt for the
  entries of COND (prompt_2 = prompt unless the entry gives its own; "two" and "neg_two" do): "plain", "empty", "skip" (diffusers' clip_skip 1) on the prompt
  side, "neg_blurry" and "neg_zeros" (negative_prompt None with force_zeros_for_empty_prompt) on the
  negative side; .ids_1 / .ids_2 (int32 [77]) the two tokenizers' padded ids (49407 / 0 after the end) of
  the texts each encoder read;
- taesd.image_uint8: euler_a_default's images with the tiny TAESD (tests/data/tiny_taesd) as the VAE;
- control.* / control_guess.*: StableDiffusionXLControlNetPipeline with the tiny ControlNet (tiny_sdxl/controlnet,
  ControlNetModel.from_unet, random weights, fp16) and tests/data/images/control_64x96.png at scale 0.8:
  euler_a_default's call, and guess mode on one image; control_img2img.* / control_inpaint.*: the same net
  with StableDiffusionXLControlNetImg2ImgPipeline / ...InpaintPipeline on the img2img / inpaint calls;
- img2img.* / inpaint.*: StableDiffusionXLImg2ImgPipeline / StableDiffusionXLInpaintPipeline (a picture,
  and a grey mask for the latter) on euler_a_default's call: latents after every unit and the images;
- <key>.latents_per_unit [units,2,4,8,16] (after every step) and <key>.image_uint8 [2,64,128,3] (NHWC,
  round(x * 255) of output_type "np") for the pipeline runs of RUNS (128x64, batch 2, guidance 5);
  each run's metadata holds every argument passed, the add_time_ids rows in the UNet's batch order
  (diffusers interleaves them: see RUNS), and fp16_spread: how far diffusers' own fp16 run
  (torch_dtype float16 on the CPU) lands from those fp32 images.

Usage (from the repository root):
    /tmp/curenv/bin/python tests/reference/make_sdxl_goldens.py
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
import transformers
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import derived_models  # noqa: E402
import ldm_names  # noqa: E402
import make_goldens as mg  # noqa: E402  (reinit: nothing identity, nothing zero)
import make_sampler_goldens as msg  # noqa: E402  (SAMPLERS)
import make_sd2_goldens as sd2  # noqa: E402  (VAE_CONFIG, TOKENIZER, openclip_names)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL_DIR = os.path.join(ROOT, "tests", "data", "tiny_sdxl")
FOLDER = os.path.join(MODEL_DIR, "diffusers")
LDM = os.path.join(MODEL_DIR, "tiny_sdxl.safetensors")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden", "sdxl.safetensors")

MODEL_SEED, INIT_SEED = 4444, 5555
IDS = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1)  # as SDXL's text encoder configs (legacy ids)
CLIP_CONFIG = dict(vocab_size=49408, hidden_size=8, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
                   max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, attention_dropout=0.0,
                   dropout=0.0, projection_dim=8, **IDS)
CLIP2_CONFIG = dict(CLIP_CONFIG, hidden_size=16, intermediate_size=64, hidden_act="gelu", projection_dim=12)
TIME_DIM = 4  # SDXL: 256
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(8, 16, 16), layers_per_block=2, transformer_layers_per_block=(1, 2, 3),
    attention_head_dim=(1, 2, 4),  # heads per level, as SDXL's [5, 10, 20]
    norm_num_groups=4, norm_eps=1e-5,
    cross_attention_dim=CLIP_CONFIG["hidden_size"] + CLIP2_CONFIG["hidden_size"],
    use_linear_projection=True, upcast_attention=False,
    addition_embed_type="text_time", addition_time_embed_dim=TIME_DIM,
    projection_class_embeddings_input_dim=CLIP2_CONFIG["projection_dim"] + 6 * TIME_DIM,
)
VAE_CONFIG = dict(sd2.VAE_CONFIG, scaling_factor=0.13025, force_upcast=True)
SCHED_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    steps_offset=1, timestep_spacing="leading", prediction_type="epsilon", set_alpha_to_one=False,
                    clip_sample=False, interpolation_type="linear", use_karras_sigmas=False)

# (name, side, prompt, negative_prompt, clip_skip[, prompt_2, negative_prompt_2]): the prompt side is
# encode_prompt's prompt_embeds / pooled_prompt_embeds, the negative side its negative_prompt_embeds /
# negative_pooled_prompt_embeds; prompt_2 / negative_prompt_2 None: the second encoder reads the first's.
COND = [("plain", "prompt", "a castle on a hill", None, None), ("empty", "prompt", "", None, None),
        ("skip", "prompt", "a castle on a hill, watercolor", None, 1),
        ("neg_blurry", "negative", "a castle on a hill", "blurry", None),
        ("neg_zeros", "negative", "a castle on a hill", None, None),
        ("two", "prompt", "a castle on a hill", None, None, "oil painting, dark sky", None),
        ("neg_two", "negative", "a castle on a hill", "blurry", None, None, "low contrast, grainy")]
CALL = dict(prompt="a castle on a hill, watercolor", width=128, height=64, num_images_per_prompt=2,
            num_inference_steps=6, guidance_scale=5.0)
SEED = 2468
# Each run: its key, sampler (msg.SAMPLERS), schedule and the further pipeline arguments. Sizes are
# diffusers' (height, width), crops (top, left). diffusers 0.42.1 builds the UNet's time ids as
# cat([negative, positive]).repeat(batch, 1): rows neg, pos, neg, pos against the embeddings' neg, neg,
# pos, pos. With a batch above 1 and negative micro-conditioning of its own, the second image's
# unconditional half and the first image's conditional half get the other side's ids, a slip sd-gen
# does not copy (each row gets its own side's ids, as SDXL's original sampling code does); so the run
# with negative micro-conditioning (euler_micro) makes one image, where diffusers' rows are right.
# Each run's metadata add_time_ids holds the rows as the UNet saw them.
RUNS = [
    dict(key="euler_micro", sampler="euler", schedule="default",
         args=dict(num_images_per_prompt=1, negative_prompt="blurry", original_size=(96, 160), crops_coords_top_left=(8, 16),
                   target_size=(64, 128), negative_original_size=(48, 80), negative_crops_coords_top_left=(0, 4),
                   negative_target_size=(64, 96))),
    dict(key="dpmpp_2m_karras_zeros", sampler="dpmpp_2m", schedule="karras",
         args=dict(negative_prompt=None, original_size=(256, 512), crops_coords_top_left=(0, 0))),
    dict(key="euler_a_default", sampler="euler_a", schedule="default", args=dict(negative_prompt="blurry")),
    # The second encoder's own texts (prompt_2, negative_prompt_2), one image. The negative prompt is ""
    # (not None): no zeros, the first encoder reads "" and the second negative_prompt_2 (COND's neg_two
    # has both negative texts).
    dict(key="euler_prompt_2", sampler="euler", schedule="default",
         args=dict(num_images_per_prompt=1, prompt_2="oil painting, dark sky", negative_prompt="",
                   negative_prompt_2="low contrast, grainy")),
]


def tokenizers():
    """Both tokenizers from the repository's CLIP vocabulary (the folder keeps none): SDXL's first pads
    with <|endoftext|>, its second (OpenCLIP's) with "!"."""
    tok = CLIPTokenizer.from_pretrained(sd2.TOKENIZER)
    tok2 = CLIPTokenizer.from_pretrained(sd2.TOKENIZER, pad_token="!")
    assert tok.pad_token_id == 49407 and tok2.pad_token_id == 0, (tok.pad_token_id, tok2.pad_token_id)
    assert tok.model_max_length == tok2.model_max_length == 77
    return tok, tok2


def build():
    torch.manual_seed(MODEL_SEED)
    gen = torch.Generator().manual_seed(INIT_SEED)
    te = CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG)).eval()
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP2_CONFIG)).eval()
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    for m in (te, te2, unet, vae):
        mg.reinit(m, gen)
    tok, tok2 = tokenizers()
    # add_watermarker=False always: the invisible watermark must never touch a golden image.
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok2,
                                     unet=unet, scheduler=EulerDiscreteScheduler.from_config(SCHED_CONFIG),
                                     force_zeros_for_empty_prompt=True, add_watermarker=False)
    return pipe


def load(dtype):
    """The pipeline from the folder, as a user's diffusers reads it (the tokenizers passed in: the folder
    has no vocabulary)."""
    tok, tok2 = tokenizers()
    pipe = StableDiffusionXLPipeline.from_pretrained(FOLDER, local_files_only=True, torch_dtype=dtype, tokenizer=tok,
                                                     tokenizer_2=tok2, add_watermarker=False)
    assert pipe.watermark is None and pipe.config.force_zeros_for_empty_prompt
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_folder(pipe):
    shutil.rmtree(MODEL_DIR, ignore_errors=True)
    # fp16 on disk (repository space); the fp32 reference runs load it back, upcast exactly.
    pipe.to(torch.float16).save_pretrained(FOLDER, safe_serialization=True)
    for root, _, files in os.walk(FOLDER):
        for f in files:
            if f.endswith(".safetensors"):
                assert all(v.dtype == torch.float16 for v in load_file(os.path.join(root, f)).values()), f


def strip_folder():
    """The vocabulary files go (tokenizer.json, vocab.json, merges.txt: 60 MiB repository budget; sd-gen
    falls back to its bundled, identical BPE); tokenizer_config.json stays (the pad token), less the
    keys transformers records about where it was loaded from."""
    for sub in ("tokenizer", "tokenizer_2"):
        d = os.path.join(FOLDER, sub)
        for name in ("tokenizer.json", "vocab.json", "merges.txt"):
            if os.path.exists(os.path.join(d, name)):
                os.remove(os.path.join(d, name))
        p = os.path.join(d, "tokenizer_config.json")
        with open(p) as f:
            cfg = json.load(f)
        for k in ("is_local", "local_files_only"):
            cfg.pop(k, None)
        with open(p, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        assert set(os.listdir(d)) <= {"tokenizer_config.json", "special_tokens_map.json"}, os.listdir(d)


def write_ldm(pipe):
    """sd_xl_base_1.0's names, fp16, checked against diffusers' own single-file converters."""
    te_sd, te2_sd = pipe.text_encoder.state_dict(), pipe.text_encoder_2.state_dict()
    sd = ldm_names.to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config), pipe.vae.state_dict(),
                          dict(pipe.vae.config), {})
    # CLIP ViT-L: transformers' names under sgm's FrozenCLIPEmbedder (transformers 5 drops "text_model.")
    for k, v in te_sd.items():
        sd["conditioner.embedders.0.transformer." + ("" if k.startswith("text_model.") else "text_model.") + k] = v
    # OpenCLIP bigG: all its layers (SDXL runs all 32 for the pooled output), no extra block
    sd.update(sd2.openclip_names(te2_sd, None, CLIP2_CONFIG["num_hidden_layers"],
                                 prefix="conditioner.embedders.1.model."))
    sd = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    assert sd["conditioner.embedders.1.model.text_projection"].shape == (16, 12)
    save_file({k: v.half() for k, v in sd.items()}, LDM, metadata={"format": "pt"})
    # The repository does not carry this file: the build writes it again from the folder
    # (tests/tools/derive_test_models.cpp) and checks it against this hash.
    derived_models.record(LDM)
    with open(LDM + ".json", "w") as f:
        json.dump({"unet": {"attention_head_dim": list(UNET_CONFIG["attention_head_dim"]),
                            "norm_num_groups": UNET_CONFIG["norm_num_groups"]},
                   "vae": {"norm_num_groups": VAE_CONFIG["norm_num_groups"]},
                   "text_encoder": {"num_attention_heads": CLIP_CONFIG["num_attention_heads"]},
                   "text_encoder_2": {"num_attention_heads": CLIP2_CONFIG["num_attention_heads"]}}, f, indent=1)
    # Independent proof: diffusers' converters read the file back to every weight, exactly (the folder's
    # fp16 values, so the fp16 file loses nothing).
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint, convert_open_clip_checkpoint)
    ckpt = load_file(LDM)
    assert set(ckpt) == set(sd) and all(v.dtype == torch.float16 for v in ckpt.values())

    def prefixed(d):
        return {("text_model." + k if not k.startswith(("text_model.", "text_projection.")) else k): v
                for k, v in d.items()}
    checks = (("unet", convert_ldm_unet_checkpoint(ckpt, dict(pipe.unet.config)), pipe.unet.state_dict()),
              ("vae", convert_ldm_vae_checkpoint(ckpt, dict(pipe.vae.config)), pipe.vae.state_dict()),
              ("text_encoder", convert_ldm_clip_checkpoint(ckpt, remove_prefix="conditioner.embedders.0.transformer."),
               prefixed(te_sd)),
              ("text_encoder_2", convert_open_clip_checkpoint(pipe.text_encoder_2, ckpt,
                                                              prefix="conditioner.embedders.1.model."), te2_sd))
    for name, conv, ref in checks:
        assert set(conv) == set(ref), (name, sorted(set(conv) ^ set(ref))[:8])
        assert all(torch.equal(conv[k].float(), ref[k]) for k in ref), name
    print("LDM file verified against diffusers' converters")


def save_sorted(tensors, path, metadata):
    """save_file, then the header's metadata keys sorted: safetensors 0.8 writes them from a Rust HashMap,
    in an order that changes from run to run, and a re-run should write the same bytes."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
        header = json.loads(raw)
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(text) == len(raw.rstrip(b" ")), "header re-serialised differently"
        f.seek(8)
        f.write(text + b" " * (n - len(text)))
    back = load_file(path)
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)


def cond_goldens(pipe, tensors):
    out = []
    for name, side, prompt, negative, skip, *second in COND:
        prompt_2, negative_2 = second or (None, None)
        with torch.no_grad():
            pe, npe, pooled, npooled = pipe.encode_prompt(prompt, prompt_2 or prompt, "cpu", 1, True,
                                                          negative_prompt=negative, negative_prompt_2=negative_2,
                                                          clip_skip=skip)
        emb, pool = (pe, pooled) if side == "prompt" else (npe, npooled)
        texts = (prompt, prompt_2 or prompt) if side == "prompt" else (negative, negative_2 or negative)
        if texts[0] is not None:
            for i, tok, text in ((1, pipe.tokenizer, texts[0]), (2, pipe.tokenizer_2, texts[1])):
                ids = tok(text, padding="max_length", max_length=77, truncation=True).input_ids
                tensors[f"cond.{name}.ids_{i}"] = torch.tensor(ids, dtype=torch.int32)
        else:  # negative_prompt None with force_zeros_for_empty_prompt: no text at all
            assert not emb.any() and not pool.any()
        tensors[f"cond.{name}.prompt_embeds"] = emb.float()
        tensors[f"cond.{name}.pooled_prompt_embeds"] = pool.float()
        out.append({"name": name, "side": side, "prompt": prompt, "prompt_2": prompt_2 or prompt,
                    "negative_prompt": negative, "negative_prompt_2": negative_2, "clip_skip": skip})
    return out


EMBEDDING = os.path.join(ROOT, "tests", "data", "embeddings", "tiny-sdxl.safetensors")
EMB_TOKEN, EMB_PROMPT = "<tiny-sdxl>", "a <tiny-sdxl> castle on a hill"


def embedding_goldens(tensors):
    """An SDXL textual-inversion file (two vectors per encoder: clip_l for CLIP ViT-L, clip_g for bigG,
    as SDXL embeddings are saved) loaded as diffusers' documentation does, one load_textual_inversion
    per encoder and tokenizer, into a pipeline of its own; encode_prompt of a prompt using it. The
    pooled output is taken at the sequence's largest id (text_encoder_2's eos_token_id is the legacy
    2), which with the new token ids is the embedding's last vector, not the end token."""
    gen = torch.Generator().manual_seed(4242)
    sd = {"clip_l": torch.randn((2, CLIP_CONFIG["hidden_size"]), generator=gen) * 0.5,
          "clip_g": torch.randn((2, CLIP2_CONFIG["hidden_size"]), generator=gen) * 0.5}
    save_file({k: v.half().float() for k, v in sd.items()}, EMBEDDING)
    sd = load_file(EMBEDDING)
    pipe = load(torch.float32)
    pipe.load_textual_inversion(sd["clip_l"], token=EMB_TOKEN, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(sd["clip_g"], token=EMB_TOKEN, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    with torch.no_grad():
        pe, _, pooled, _ = pipe.encode_prompt(EMB_PROMPT, EMB_PROMPT, "cpu", 1, False)
    tensors["cond.emb.prompt_embeds"] = pe.float()
    tensors["cond.emb.pooled_prompt_embeds"] = pooled.float()
    for i, tok in ((1, pipe.tokenizer), (2, pipe.tokenizer_2)):
        # encode_prompt's own expansion of a multi-vector token ("<t>" -> "<t> <t>_1")
        ids = tok(pipe.maybe_convert_prompt(EMB_PROMPT, tok), padding="max_length", max_length=77,
                  truncation=True).input_ids
        assert 49408 in ids and 49409 in ids, ids[:8]
        tensors[f"cond.emb.ids_{i}"] = torch.tensor(ids, dtype=torch.int32)
    return {"name": "emb", "side": "prompt", "prompt": EMB_PROMPT, "prompt_2": EMB_PROMPT, "negative_prompt": None,
            "clip_skip": None, "embedding": os.path.relpath(EMBEDDING, ROOT), "token": EMB_TOKEN}


LORA_DIR = os.path.join(ROOT, "tests", "data", "lora")
LORA_RANK, LORA_ALPHA = 2, 1.0  # alpha/rank = 0.5, so a loader that ignores alpha is caught
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                "conv2", "time_emb_proj", "add_embedding.linear_1"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def kohya_name(peft_key, unet_cfg):
    """diffusers/PEFT key -> kohya's sd-scripts name for SDXL: the UNet under SDXL's original (sgm)
    module paths, the encoders as lora_te1_ / lora_te2_ with "text_model." kept; '_' for '.',
    lora_down/lora_up for A/B."""
    comp, rest = peft_key.split(".", 1)
    module, kind = rest.rsplit(".lora_", 1)
    down_up = {"A.weight": "lora_down.weight", "B.weight": "lora_up.weight"}[kind]
    if comp == "unet":
        ldm = ldm_names.unet_key(module + ".weight", unet_cfg)[: -len(".weight")]
        return "lora_unet_" + ldm.replace(".", "_"), down_up
    if not module.startswith("text_model."):
        module = "text_model." + module  # transformers 5 dropped the level; kohya names keep it
    return ("lora_te1_" if comp == "text_encoder" else "lora_te2_") + module.replace(".", "_"), down_up


def lora_goldens(tensors):
    """A LoRA on the UNet (attention, feed-forward, resnet convs, time and added embeddings) and both
    text encoders, saved by diffusers (PEFT names) and rewritten in kohya's SDXL names; each loaded
    with load_lora_weights and fused (W += (alpha/r)·B·A, what sd-gen merges at load): the same
    images within ±1. The PEFT file's run (euler_a_default's call) is the golden."""
    import math
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    src = load(torch.float32)
    src.unet.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=UNET_TARGETS,
                                    init_lora_weights=False))
    for te in (src.text_encoder, src.text_encoder_2):
        inject_adapter_in_model(LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=TE_TARGETS,
                                           init_lora_weights=False), te, adapter_name="default")
    gen = torch.Generator("cpu").manual_seed(1357)
    with torch.no_grad():
        for model in (src.unet, src.text_encoder, src.text_encoder_2):
            for name, p in model.named_parameters():
                if "lora_" in name:  # both factors N(0, 1/fan_in): a delta of the weights' own size
                    p.copy_((torch.randn(p.shape, generator=gen) / math.sqrt(p.numel() // p.shape[0])).half().float())
    layers = [get_peft_model_state_dict(m) for m in (src.unet, src.text_encoder, src.text_encoder_2)]
    meta = [m.peft_config["default"].to_dict() for m in (src.unet, src.text_encoder, src.text_encoder_2)]
    StableDiffusionXLPipeline.save_lora_weights(LORA_DIR, unet_lora_layers=layers[0], text_encoder_lora_layers=layers[1],
                                                text_encoder_2_lora_layers=layers[2],
                                                weight_name="tiny_sdxl_lora_peft.safetensors",
                                                unet_lora_adapter_metadata=meta[0],
                                                text_encoder_lora_adapter_metadata=meta[1],
                                                text_encoder_2_lora_adapter_metadata=meta[2])
    peft_file = os.path.join(LORA_DIR, "tiny_sdxl_lora_peft.safetensors")
    from safetensors import safe_open
    with safe_open(peft_file, "pt") as f:
        peft_meta = f.metadata()
    # The same bytes on every run: peft's target_modules are a set (its order follows Python's string
    # hashing), so the adapter metadata is written again with its lists sorted.
    adapter = json.loads(peft_meta["lora_adapter_metadata"])
    adapter = {k: sorted(v) if k.endswith("target_modules") and isinstance(v, list) else v for k, v in adapter.items()}
    peft_meta["lora_adapter_metadata"] = json.dumps(adapter, indent=2, sort_keys=True)
    save_sorted(load_file(peft_file), peft_file, peft_meta)
    unet_cfg = dict(src.unet.config)
    kohya = {}
    for k, v in load_file(peft_file).items():
        name, down_up = kohya_name(k, unet_cfg)
        kohya[f"{name}.{down_up}"] = v
        kohya[f"{name}.alpha"] = torch.tensor(LORA_ALPHA, dtype=torch.float32)
    kohya_file = os.path.join(LORA_DIR, "tiny_sdxl_lora_kohya.safetensors")
    save_sorted(kohya, kohya_file, {"ss_network_dim": str(LORA_RANK), "ss_base_model_version": "sdxl_base_v1-0"})
    del src
    run = next(r for r in RUNS if r["key"] == "euler_a_default")
    images = {}
    for form, f in (("peft", peft_file), ("kohya", kohya_file)):
        pipe = load(torch.float32)
        base = dict(pipe.scheduler.config)
        pipe.scheduler = scheduler(base, run)
        pipe.load_lora_weights(f, adapter_name="x")
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()
        lat = []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            return kw
        out = call(pipe, run, callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
        images[form] = (torch.from_numpy(np.ascontiguousarray((out.images * 255).round().astype("uint8"))),
                        torch.stack(lat).float())
    d = (images["peft"][0].int() - images["kohya"][0].int()).abs()
    assert d.max() <= 1, ("kohya vs peft", int(d.max()))
    assert (images["peft"][0].int() - tensors["euler_a_default.image_uint8"].int()).abs().max() > 8, "LoRA changed nothing"
    tensors["lora.image_uint8"], tensors["lora.latents_per_unit"] = images["peft"]
    print("lora:", len(kohya) // 3, "modules; kohya vs peft images within", int(d.max()))
    return {"key": "lora", "like": "euler_a_default", "peft": os.path.relpath(peft_file, ROOT),
            "kohya": os.path.relpath(kohya_file, ROOT), "rank": LORA_RANK, "alpha": LORA_ALPHA}


IMG2IMG = dict(image="tests/data/images/init_128x64.png", strength=0.6, negative_prompt="blurry")


EXTRAS_LIKE = "euler_a_default"  # the run the pictures-in and ControlNet runs repeat


def record(p, tensors, key, base_config, **kw):
    """`p` with EXTRAS_LIKE's sampler (from base_config) called with kw, SEED's generator: the latents
    after every unit and the images stored under `key`. Returns the number of units."""
    run = next(r for r in RUNS if r["key"] == EXTRAS_LIKE)
    p.set_progress_bar_config(disable=True)
    p.scheduler = scheduler(dict(base_config), run)
    lat = []

    def cb(_p, i, t, k):
        lat.append(k["latents"].clone())
        return k
    out = p(**kw, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np", callback_on_step_end=cb,
            callback_on_step_end_tensor_inputs=["latents"])
    tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float()
    tensors[f"{key}.image_uint8"] = torch.from_numpy(np.ascontiguousarray((out.images * 255).round().astype("uint8")))
    return len(lat)


def like_args(**more):
    """EXTRAS_LIKE's call with `more` on top, and the metadata that names it (sampler, schedule, seed)."""
    run = next(r for r in RUNS if r["key"] == EXTRAS_LIKE)
    args = dict(CALL, **run["args"])
    args.update(more)
    return args, dict(args, sampler=run["sampler"], schedule=run["schedule"], seed=SEED)


def img2img_goldens(pipe, tensors):
    """StableDiffusionXLImg2ImgPipeline on the same components (SDXL base: requires_aesthetics_score
    False, so the size ids are txt2img's), the picture encoded by the VAE in fp32 (force_upcast),
    strength 0.6 of euler_a_default's call: the latents after every unit and the images."""
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from PIL import Image
    i2i = StableDiffusionXLImg2ImgPipeline(**pipe.components, requires_aesthetics_score=False,
                                           force_zeros_for_empty_prompt=True, add_watermarker=False)
    image = Image.open(os.path.join(ROOT, IMG2IMG["image"])).convert("RGB")
    args, meta = like_args(negative_prompt=IMG2IMG["negative_prompt"], strength=IMG2IMG["strength"])
    units = record(i2i, tensors, "img2img", pipe.scheduler.config, image=image,
                   **{k: v for k, v in args.items() if k not in ("width", "height")})
    print("img2img:", units, "units")
    meta.update(IMG2IMG, key="img2img", units=units)
    return meta


INPAINT = dict(image="tests/data/images/init_128x64.png", mask_image="tests/data/images/mask_128x64.png",
               strength=0.75, negative_prompt="blurry")


def inpaint_goldens(pipe, tensors):
    """StableDiffusionXLInpaintPipeline on the same components (SDXL base: a 4-channel UNet, so the kept
    region's latents are renoised to the next step's level and blended back after every step;
    requires_aesthetics_score False), the picture encoded by the VAE in fp32 (force_upcast), the grey
    mask binarized at 0.5 (mask_128x64.png holds 127 and 128), strength 0.75 of euler_a_default's call,
    batch 2: the latents after every unit and the images."""
    from diffusers import StableDiffusionXLInpaintPipeline
    from PIL import Image
    inp = StableDiffusionXLInpaintPipeline(**pipe.components, requires_aesthetics_score=False,
                                           force_zeros_for_empty_prompt=True, add_watermarker=False)
    image = Image.open(os.path.join(ROOT, INPAINT["image"])).convert("RGB")
    mask = Image.open(os.path.join(ROOT, INPAINT["mask_image"])).convert("L")
    args, meta = like_args(negative_prompt=INPAINT["negative_prompt"], strength=INPAINT["strength"])
    units = record(inp, tensors, "inpaint", pipe.scheduler.config, image=image, mask_image=mask, **args)
    print("inpaint:", units, "units")
    meta.update(INPAINT, key="inpaint", units=units)
    return meta


CONTROLNET = os.path.join(MODEL_DIR, "controlnet")
CONTROL = dict(image="tests/data/images/control_64x96.png", scale=0.8)


def changed(tensors, key, plain):
    """The run `key` gave other images than the run `plain` (its first images) did: the net changed something."""
    ours = tensors[f"{key}.image_uint8"].int()
    d = (ours - tensors[f"{plain}.image_uint8"][: len(ours)].int()).abs().max()
    assert d > 8, (key, "changed nothing", int(d))
    print(key + ":", len(tensors[f"{key}.latents_per_unit"]), "units; images differ from " + plain + "'s by up to", int(d))


def controlnet_goldens(pipe, tensors):
    """A ControlNet of the tiny SDXL UNet's layout (ControlNetModel.from_unet: the "text_time" added
    embedding, transformer depths 1/2, linear projections), every parameter random (the zero
    convolutions included, else it would change nothing), saved as a diffusers folder in fp16;
    StableDiffusionXLControlNetPipeline on the folder's components with it, the control picture resized
    to 128x64 by diffusers (Lanczos), scale 0.8: euler_a_default's call (batch 2), and guess mode on
    one image (the net sees the conditional rows and their added conditioning alone). The size ids are
    txt2img's: diffusers takes original_size from the resized control image, (height, width)."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline
    from PIL import Image
    net = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(4, 8, 8, 8)).eval()
    mg.reinit(net, torch.Generator().manual_seed(7303))
    assert net.config.addition_embed_type == "text_time" and net.config.use_linear_projection
    shutil.rmtree(CONTROLNET, ignore_errors=True)
    net.half().save_pretrained(CONTROLNET, safe_serialization=True)
    net = ControlNetModel.from_pretrained(CONTROLNET, torch_dtype=torch.float32).eval()
    cp = StableDiffusionXLControlNetPipeline(**{k: v for k, v in pipe.components.items()
                                                if k not in ("image_encoder", "feature_extractor")},
                                             controlnet=net, force_zeros_for_empty_prompt=True, add_watermarker=False)
    image = Image.open(os.path.join(ROOT, CONTROL["image"])).convert("RGB")
    meta = []
    for key, more in (("control", {}), ("control_guess", dict(guess_mode=True, num_images_per_prompt=1))):
        args, m = like_args(**more)
        units = record(cp, tensors, key, pipe.scheduler.config, image=image,
                       controlnet_conditioning_scale=CONTROL["scale"], **args)
        changed(tensors, key, EXTRAS_LIKE)
        m.update(key=key, units=units, guess_mode=bool(more.get("guess_mode", False)))
        meta.append(m)
    meta += controlnet_picture_goldens(pipe, net, image, tensors)
    return {"controlnet": os.path.relpath(CONTROLNET, ROOT), "image": CONTROL["image"], "scale": CONTROL["scale"],
            "runs": meta}


def controlnet_picture_goldens(pipe, net, control_image, tensors):
    """The ControlNet with pictures in: StableDiffusionXLControlNetImg2ImgPipeline (IMG2IMG's picture and
    strength) and StableDiffusionXLControlNetInpaintPipeline (INPAINT's picture, mask and strength), both
    with requires_aesthetics_score False (SDXL base), euler_a_default's call at 128x64 (the control
    picture resized to it), scale 0.8, batch 2."""
    from diffusers import StableDiffusionXLControlNetImg2ImgPipeline, StableDiffusionXLControlNetInpaintPipeline
    from PIL import Image
    comps = {k: v for k, v in pipe.components.items() if k not in ("image_encoder", "feature_extractor")}
    meta = []
    for key, cls, more in (("control_img2img", StableDiffusionXLControlNetImg2ImgPipeline, IMG2IMG),
                           ("control_inpaint", StableDiffusionXLControlNetInpaintPipeline, INPAINT)):
        cp = cls(**comps, controlnet=net, requires_aesthetics_score=False, force_zeros_for_empty_prompt=True,
                 add_watermarker=False)
        pictures = {"image": Image.open(os.path.join(ROOT, more["image"])).convert("RGB")}
        if "mask_image" in more:
            pictures["mask_image"] = Image.open(os.path.join(ROOT, more["mask_image"])).convert("L")
        args, m = like_args(negative_prompt=more["negative_prompt"], strength=more["strength"])
        units = record(cp, tensors, key, pipe.scheduler.config, **pictures, control_image=control_image,
                       controlnet_conditioning_scale=CONTROL["scale"], **args)
        changed(tensors, key, key.replace("control_", ""))
        m.update(more, key=key, units=units, guess_mode=False)
        meta.append(m)
    return meta


TAESD = os.path.join(ROOT, "tests", "data", "tiny_taesd")


def taesd_goldens(pipe, tensors):
    """euler_a_default's call with the tiny TAESD (tests/data/tiny_taesd, make_taesd_goldens.py; a
    diffusers AutoencoderTiny, loaded in fp32) as the pipeline's VAE, as people pass taesdxl: diffusers
    divides the latents by its scaling_factor 1.0 and decodes them with it. The latents are
    euler_a_default's; the images."""
    from diffusers import AutoencoderTiny
    tiny = AutoencoderTiny.from_pretrained(TAESD, torch_dtype=torch.float32)
    p2 = StableDiffusionXLPipeline(**dict(pipe.components, vae=tiny), force_zeros_for_empty_prompt=True,
                                   add_watermarker=False)
    p2.set_progress_bar_config(disable=True)
    run = next(r for r in RUNS if r["key"] == "euler_a_default")
    p2.scheduler = scheduler(dict(pipe.scheduler.config), run)
    out = call(p2, run)
    tensors["taesd.image_uint8"] = torch.from_numpy(np.ascontiguousarray((out.images * 255).round().astype("uint8")))
    d = (tensors["taesd.image_uint8"].int() - tensors["euler_a_default.image_uint8"].int()).abs().max()
    assert d > 8, ("TAESD decoded like the VAE", int(d))
    print("taesd: images differ from the VAE's by up to", int(d))
    return {"key": "taesd", "like": "euler_a_default", "vae_tiny": os.path.relpath(TAESD, ROOT)}


def scheduler(base, run):
    cls, extra, _ = msg.SAMPLERS[run["sampler"]]
    cfg = dict(base, **extra)
    if run["schedule"] == "karras":
        cfg["use_karras_sigmas"] = True
    return cls.from_config(cfg)


def call(pipe, run, **kw):
    return pipe(**dict(CALL, **run["args"]), generator=torch.Generator("cpu").manual_seed(SEED), output_type="np", **kw)


def run_goldens(pipe, tensors):
    runs = []
    base = dict(pipe.scheduler.config)
    for run in RUNS:
        pipe.scheduler = scheduler(base, run)
        lat, time_ids = [], []

        def cb(_p, i, t, kw):
            lat.append(kw["latents"].clone())
            if i == 0:
                time_ids.append(kw["add_time_ids"].clone())
            return kw
        out = call(pipe, run, callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents", "add_time_ids"])
        key = run["key"]
        tensors[f"{key}.latents_per_unit"] = torch.stack(lat).float()
        tensors[f"{key}.image_uint8"] = torch.from_numpy(
            np.ascontiguousarray((out.images * 255).round().astype("uint8")))
        runs.append(dict(CALL, **{k: list(v) if isinstance(v, tuple) else v for k, v in run["args"].items()},
                         seed=SEED, key=key, sampler=run["sampler"], schedule=run["schedule"],
                         scheduler=type(pipe.scheduler).__name__, units=len(lat),
                         # the rows in the UNet's batch order (uncond then cond, each repeated as diffusers does)
                         add_time_ids=time_ids[0].tolist()))
        print(key, len(lat), "units; add_time_ids", time_ids[0].tolist())
    pipe.scheduler = EulerDiscreteScheduler.from_config(base)
    return runs


def fp16_spread(tensors, runs):
    """diffusers' own fp16 run (on the CPU) against its fp32 images, per run: the share of channels
    within ±1 and exact (the least over the batch) and the worst difference. With force_upcast the
    VAE decodes in fp32, as diffusers does it."""
    pipe = load(torch.float16)
    base = dict(pipe.scheduler.config)
    for run, r in zip(RUNS, runs):
        pipe.scheduler = scheduler(base, run)
        out = call(pipe, run)
        im = (out.images.astype(np.float32) * 255).round().astype(np.int64)
        ref = tensors[r["key"] + ".image_uint8"].numpy().astype(np.int64)
        d = [np.abs(im[b] - ref[b]) for b in range(len(im))]
        r["fp16_spread"] = {"within1": float(min((x <= 1).mean() for x in d)),
                            "exact": float(min((x == 0).mean() for x in d)), "worst": int(max(x.max() for x in d))}
        print(r["key"], "diffusers fp16 vs fp32:", r["fp16_spread"])


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    save_folder(build())
    # Everything from the saved files, in fp32 on exactly the stored fp16 values.
    pipe = load(torch.float32)
    assert pipe.text_encoder_2.config.hidden_act == "gelu" and pipe.text_encoder.config.hidden_act == "quick_gelu"
    assert pipe.unet.config.addition_embed_type == "text_time" and pipe.vae.config.force_upcast
    write_ldm(pipe)
    tensors = {}
    cond = cond_goldens(pipe, tensors)
    runs = run_goldens(pipe, tensors)
    fp16_spread(tensors, runs)
    img2img = img2img_goldens(pipe, tensors)
    inpaint = inpaint_goldens(pipe, tensors)
    taesd = taesd_goldens(pipe, tensors)
    control = controlnet_goldens(pipe, tensors)
    cond.append(embedding_goldens(tensors))
    lora = lora_goldens(tensors)
    save_sorted({k: v.contiguous() for k, v in tensors.items()}, GOLDEN,
                metadata={"made_by": "tests/reference/make_sdxl_goldens.py", "diffusers": diffusers.__version__,
                          "transformers": transformers.__version__, "torch": torch.__version__,
                          "cond": json.dumps(cond), "runs": json.dumps(runs), "lora": json.dumps(lora), "img2img": json.dumps(img2img), "inpaint": json.dumps(inpaint), "taesd": json.dumps(taesd), "controlnet": json.dumps(control),
                          "how": "cond.<name>: pipe.encode_prompt(prompt, prompt_2 (or prompt), do_classifier_free_guidance"
                                 "=True, negative_prompt, negative_prompt_2, clip_skip): side prompt -> prompt_embeds [1,77,24] and "
                                 "pooled_prompt_embeds [1,12], side negative -> the negative ones; ids_1/ids_2 the "
                                 "two tokenizers' padded ids; cond.emb: with the embedding file loaded per "
                                 "encoder (load_textual_inversion); lora.*: euler_a_default's call with the PEFT LoRA fused (lora metadata); img2img.*: "
                                 "StableDiffusionXLImg2ImgPipeline, the img2img metadata's call; inpaint.*: StableDiffusionXLInpaintPipeline, the inpaint metadata's call; taesd.image_uint8: euler_a_default's call with the tiny AutoencoderTiny as the VAE; control.* / control_guess.*: StableDiffusionXLControlNetPipeline with the tiny ControlNet (controlnet metadata: its runs' calls). <key>: StableDiffusionXLPipeline.from_pretrained("
                                 "tests/data/tiny_sdxl/diffusers, tokenizers from tests/data/tiny_sd_tf5, "
                                 "add_watermarker=False), scheduler Class.from_config(its config + the sampler's "
                                 "settings), the run's arguments, generator Generator('cpu').manual_seed(seed); "
                                 "latents_per_unit [units,B,4,8,16] after each step, image_uint8 NHWC [B,64,128,3]"})
    strip_folder()
    print(len(cond), "conditionings,", len(runs), "runs ->", GOLDEN, os.path.getsize(GOLDEN), "bytes")
