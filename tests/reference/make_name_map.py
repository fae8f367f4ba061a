#!/usr/bin/env python3
"""Makes tests/data/checkpoint_name_map.json: the LDM <-> diffusers tensor names of small SD v1
models, from the reference implementations, for test_checkpoint.cpp to check our table against.

How the pairs are obtained (nothing here reads our C++ table):
  1. The LDM names are enumerated from the original LDM architecture (ldm.modules.diffusionmodules
     openaimodel.UNetModel / model.Encoder+Decoder, transformers' CLIPTextModel under
     cond_stage_model.transformer), written out below.
  2. Each LDM tensor gets a unique id value; diffusers' own single-file converters
     (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint) rename
     them, and the id tells which LDM name became which diffusers name.
  3. The result must equal, name for name and shape for shape, the state dict of the diffusers /
     transformers model built from the same config: so the LDM enumeration of step 1 is exactly
     what the converter expects, and every diffusers parameter is covered.

Run: /tmp/refenv/bin/python tests/reference/make_name_map.py   (see requirements.txt)
"""
import json
import os
import re

import diffusers
import torch
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from transformers import CLIPTextConfig, CLIPTextModel

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "checkpoint_name_map.json")


# ---------- 1. LDM names, from the LDM architecture ----------

def ldm_unet_names(c, attn, lpb):
    """openaimodel.UNetModel with model_channels c[0], one transformer per attention level."""
    names = []

    def resblock(p, cin, cout):
        for sub in ["in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3"]:
            names.extend([f"{p}.{sub}.weight", f"{p}.{sub}.bias"])
        if cin != cout:
            names.extend([f"{p}.skip_connection.weight", f"{p}.skip_connection.bias"])

    def transformer(p):
        names.extend([f"{p}.norm.weight", f"{p}.norm.bias", f"{p}.proj_in.weight", f"{p}.proj_in.bias"])
        b = f"{p}.transformer_blocks.0"
        for a in ["attn1", "attn2"]:
            names.extend([f"{b}.{a}.to_q.weight", f"{b}.{a}.to_k.weight", f"{b}.{a}.to_v.weight",
                          f"{b}.{a}.to_out.0.weight", f"{b}.{a}.to_out.0.bias"])
        for s in ["ff.net.0.proj", "ff.net.2", "norm1", "norm2", "norm3"]:
            names.extend([f"{b}.{s}.weight", f"{b}.{s}.bias"])
        names.extend([f"{p}.proj_out.weight", f"{p}.proj_out.bias"])

    names.extend(["time_embed.0.weight", "time_embed.0.bias", "time_embed.2.weight", "time_embed.2.bias",
                  "input_blocks.0.0.weight", "input_blocks.0.0.bias"])
    chans = [c[0]]  # what each input block hands to the skip connections
    ch, idx = c[0], 1
    for lvl in range(len(c)):
        for _ in range(lpb):
            resblock(f"input_blocks.{idx}.0", ch, c[lvl])
            ch = c[lvl]
            if attn[lvl]:
                transformer(f"input_blocks.{idx}.1")
            chans.append(ch)
            idx += 1
        if lvl != len(c) - 1:
            names.extend([f"input_blocks.{idx}.0.op.weight", f"input_blocks.{idx}.0.op.bias"])
            chans.append(ch)
            idx += 1
    resblock("middle_block.0", ch, ch)
    transformer("middle_block.1")
    resblock("middle_block.2", ch, ch)
    idx = 0
    for lvl in reversed(range(len(c))):
        for j in range(lpb + 1):
            resblock(f"output_blocks.{idx}.0", ch + chans.pop(), c[lvl])
            ch = c[lvl]
            k = 1
            if attn[lvl]:
                transformer(f"output_blocks.{idx}.1")
                k = 2
            if lvl != 0 and j == lpb:
                names.extend([f"output_blocks.{idx}.{k}.conv.weight", f"output_blocks.{idx}.{k}.conv.bias"])
            idx += 1
    names.extend(["out.0.weight", "out.0.bias", "out.2.weight", "out.2.bias"])
    return ["model.diffusion_model." + n for n in names]


def ldm_vae_names(c, lpb):
    """ldm model.Encoder / Decoder (ch = c[0], ch_mult = c / c[0]) plus quant convs."""
    names = []

    def resblock(p, cin, cout):
        for sub in ["norm1", "conv1", "norm2", "conv2"]:
            names.extend([f"{p}.{sub}.weight", f"{p}.{sub}.bias"])
        if cin != cout:
            names.extend([f"{p}.nin_shortcut.weight", f"{p}.nin_shortcut.bias"])

    def mid(p, ch):
        resblock(f"{p}.mid.block_1", ch, ch)
        for s in ["norm", "q", "k", "v", "proj_out"]:
            names.extend([f"{p}.mid.attn_1.{s}.weight", f"{p}.mid.attn_1.{s}.bias"])
        resblock(f"{p}.mid.block_2", ch, ch)

    def plain(p):
        names.extend([f"{p}.weight", f"{p}.bias"])

    plain("encoder.conv_in")
    ch = c[0]
    for i in range(len(c)):
        for j in range(lpb):
            resblock(f"encoder.down.{i}.block.{j}", ch, c[i])
            ch = c[i]
        if i != len(c) - 1:
            plain(f"encoder.down.{i}.downsample.conv")
    mid("encoder", ch)
    plain("encoder.norm_out")
    plain("encoder.conv_out")
    plain("quant_conv")
    plain("post_quant_conv")
    plain("decoder.conv_in")
    ch = c[-1]
    mid("decoder", ch)
    for i in reversed(range(len(c))):
        for j in range(lpb + 1):
            resblock(f"decoder.up.{i}.block.{j}", ch, c[i])
            ch = c[i]
        if i != 0:
            plain(f"decoder.up.{i}.upsample.conv")
    plain("decoder.norm_out")
    plain("decoder.conv_out")
    return ["first_stage_model." + n for n in names]


def ldm_clip_names(layers):
    p = "cond_stage_model.transformer.text_model."
    names = ["embeddings.token_embedding.weight", "embeddings.position_embedding.weight"]
    for i in range(layers):
        for s in ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.out_proj",
                  "layer_norm1", "mlp.fc1", "mlp.fc2", "layer_norm2"]:
            names.extend([f"encoder.layers.{i}.{s}.weight", f"encoder.layers.{i}.{s}.bias"])
    names.extend(["final_layer_norm.weight", "final_layer_norm.bias"])
    return [p + n for n in names]


# ---------- 2./3. convert with diffusers, check against the real models ----------

def pairs_via(convert, ldm_names, expected_state, prefix):
    ckpt = {n: torch.tensor([float(i)]) for i, n in enumerate(ldm_names)}
    out = convert(ckpt)
    pairs = {}
    for dk, t in out.items():
        ldm = ldm_names[int(t.reshape(-1)[0].item())]
        assert dk not in pairs
        pairs[dk] = ldm
    missing = sorted(set(expected_state) - set(pairs))
    extra = sorted(set(pairs) - set(expected_state))
    assert not missing and not extra, (prefix, missing[:5], extra[:5])
    assert len(set(pairs.values())) == len(pairs) == len(ldm_names), prefix
    rows = []
    for dk in expected_state:  # the model's own order
        shape = list(expected_state[dk].shape)
        ldm_shape = shape
        if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", pairs[dk]):
            ldm_shape = shape + [1, 1]  # LDM keeps these as 1x1 convs
        row = [pairs[dk], prefix + dk, shape]
        if ldm_shape != shape:
            row.append(ldm_shape)
        rows.append(row)
    return rows


def model_entry(name, unet_kw, vae_kw, clip_kw):
    torch.manual_seed(0)
    with torch.device("meta"):  # names and shapes only: no memory for the full-size model
        unet = UNet2DConditionModel(**unet_kw)
        vae = AutoencoderKL(**vae_kw)
        clip = CLIPTextModel(CLIPTextConfig(**clip_kw))
    ucfg, vcfg = dict(unet.config), dict(vae.config)
    c = list(ucfg["block_out_channels"])
    attn = [t.startswith("CrossAttn") for t in ucfg["down_block_types"]]
    clip_state = {k: v for k, v in clip.state_dict().items() if not k.endswith("position_ids")}
    rows = []
    rows += pairs_via(lambda ck: convert_ldm_unet_checkpoint(ck, ucfg),
                      ldm_unet_names(c, attn, ucfg["layers_per_block"]), unet.state_dict(), "unet.")
    rows += pairs_via(lambda ck: convert_ldm_vae_checkpoint(ck, vcfg),
                      ldm_vae_names(list(vcfg["block_out_channels"]), vcfg["layers_per_block"]),
                      vae.state_dict(), "vae.")
    rows += pairs_via(convert_ldm_clip_checkpoint, ldm_clip_names(clip_kw["num_hidden_layers"]), clip_state,
                      "text_encoder.")
    return {
        "name": name,
        # What save_pretrained writes as each component's config.json.
        "unet_config": json.loads(unet.to_json_string()),
        "vae_config": json.loads(vae.to_json_string()),
        "text_encoder_config": json.loads(clip.config.to_json_string()),
        "tensors": rows,  # [ldm name, canonical name, diffusers shape, (ldm shape when different)]
    }


def main():
    models = [
        model_entry(
            "sd_v1_tiny",  # the SD v1 layout at toy widths
            dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16, 16),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 layers_per_block=2, attention_head_dim=2, cross_attention_dim=12, norm_num_groups=4),
            dict(in_channels=3, out_channels=3, block_out_channels=(8, 8, 16, 16),
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                 layers_per_block=2, latent_channels=4, norm_num_groups=4, sample_size=32),
            dict(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                 num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu"),
        ),
        model_entry(
            "odd_layout",  # 3 levels, no attention in the first, one resnet per level, head list
            dict(sample_size=8, in_channels=5, out_channels=3, block_out_channels=(8, 16, 24),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 layers_per_block=1, attention_head_dim=[4, 4, 4], cross_attention_dim=20, norm_num_groups=8,
                 norm_eps=1e-6),
            dict(in_channels=3, out_channels=3, block_out_channels=(8, 16),
                 down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                 layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=16,
                 scaling_factor=0.5),
            dict(vocab_size=50, hidden_size=8, intermediate_size=24, num_hidden_layers=1,
                 num_attention_heads=1, max_position_embeddings=10, hidden_act="gelu", layer_norm_eps=1e-6),
        ),
        model_entry(
            "sd_v1_full",  # the real SD v1.x sizes (stable-diffusion-v1-5's config.json values)
            dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 layers_per_block=2, attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32),
            dict(in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512),
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                 layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512),
            dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"),
        ),
    ]
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    doc = {
        "about": "LDM <-> diffusers tensor names; made by tests/reference/make_name_map.py with diffusers "
                 f"{diffusers.__version__}, transformers {transformers.__version__}, torch {torch.__version__}",
        "scheduler_config": json.loads(sched.to_json_string()),
        "models": models,
    }
    # Configs indented, one tensor row per line: small, and diffs read well.
    rows = {}
    for i, m in enumerate(models):
        rows[f"@rows{i}@"] = m["tensors"]
        m["tensors"] = f"@rows{i}@"
    text = json.dumps(doc, indent=1)
    for key, r in rows.items():
        text = text.replace(json.dumps(key), "[\n" + ",\n".join(json.dumps(x, separators=(",", ":")) for x in r) + "]")
    with open(OUT, "w") as f:
        f.write(text + "\n")
    for i, m in enumerate(models):
        print(m["name"], len(rows[f"@rows{i}@"]), "tensors")


if __name__ == "__main__":
    main()
