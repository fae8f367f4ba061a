"""diffusers -> original LDM (CompVis) tensor names for SD v1 single-file checkpoints (and SD 2's and
SDXL's UNet and VAE, which keep that layout; SDXL adds label_emb).

Written from the documented layout of the LDM modules (ldm/modules/diffusionmodules/openaimodel.py and
model.py); make_goldens.py proves the table independently by loading the result back with diffusers'
own single-file converters and comparing every tensor.
"""
import re

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

# resnet sub-module names: diffusers ResnetBlock2D -> LDM ResBlock
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
# VAE resnet: only the shortcut is renamed
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
               "conv_shortcut": "nin_shortcut"}
# VAE mid attention: diffusers Attention (linears) -> LDM AttnBlock (1x1 convs)
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _sub(rest, table, what):
    for src, dst in table.items():
        if rest.startswith(src + "."):
            return dst + rest[len(src):]
    raise KeyError(f"unmapped {what} tensor: {rest}")


def unet_key(k, cfg):
    """diffusers UNet2DConditionModel state-dict key -> LDM key (without model.diffusion_model.)."""
    L = cfg["layers_per_block"]
    up_has_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    simple = {
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        # SDXL's "text_time" embedding (pooled text + size/crop ids): sgm's label_emb, a Sequential in a Sequential
        "add_embedding.linear_1.": "label_emb.0.0.",
        "add_embedding.linear_2.": "label_emb.0.2.",
        "conv_in.": "input_blocks.0.0.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
    }
    for src, dst in simple.items():
        if k.startswith(src):
            return dst + k[len(src):]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        blk = 1 + i * (L + 1) + j
        if kind == "resnets":
            return f"input_blocks.{blk}.0." + _sub(rest, _UNET_RESNET, "unet resnet")
        return f"input_blocks.{blk}.1.{rest}"  # transformer internals keep their names
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k)
    if m:
        return f"input_blocks.{(int(m[1]) + 1) * (L + 1)}.0.op.{m[2]}"
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.*)", k)
    if m:
        return f"middle_block.{2 * int(m[1])}." + _sub(m[2], _UNET_RESNET, "unet resnet")
    m = re.match(r"mid_block\.attentions\.0\.(.*)", k)
    if m:
        return f"middle_block.1.{m[1]}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        blk = i * (L + 1) + j
        if kind == "resnets":
            return f"output_blocks.{blk}.0." + _sub(rest, _UNET_RESNET, "unet resnet")
        return f"output_blocks.{blk}.1.{rest}"
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k)
    if m:
        i = int(m[1])
        # the upsampler follows the resnet (and the transformer, when the level has one)
        return f"output_blocks.{i * (L + 1) + L}.{2 if up_has_attn[i] else 1}.conv.{m[2]}"
    raise KeyError(f"unmapped unet tensor: {k}")


def vae_key(k, cfg):
    """diffusers AutoencoderKL key -> LDM key (without first_stage_model.). Returns (key, is_attn_linear)."""
    n = len(cfg["block_out_channels"])
    if k.startswith(("quant_conv.", "post_quant_conv.")):
        return k, False
    part, rest = k.split(".", 1)  # encoder / decoder
    for src, dst in {"conv_in.": "conv_in.", "conv_out.": "conv_out.", "conv_norm_out.": "norm_out."}.items():
        if rest.startswith(src):
            return f"{part}.{dst}{rest[len(src):]}", False
    m = re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest)
    if m:
        return f"{part}.down.{m[1]}.block.{m[2]}." + _sub(m[3], _VAE_RESNET, "vae resnet"), False
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", rest)
    if m:
        return f"{part}.down.{m[1]}.downsample.conv.{m[2]}", False
    # LDM numbers the decoder levels from the lowest resolution's *opposite* end
    m = re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest)
    if m:
        return f"{part}.up.{n - 1 - int(m[1])}.block.{m[2]}." + _sub(m[3], _VAE_RESNET, "vae resnet"), False
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", rest)
    if m:
        return f"{part}.up.{n - 1 - int(m[1])}.upsample.conv.{m[2]}", False
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest)
    if m:
        return f"{part}.mid.block_{int(m[1]) + 1}." + _sub(m[2], _VAE_RESNET, "vae resnet"), False
    m = re.match(r"mid_block\.attentions\.0\.(.*)", rest)
    if m:
        sub = _sub(m[1], _VAE_ATTN, "vae attention")
        return f"{part}.mid.attn_1.{sub}", not sub.startswith("norm.")
    raise KeyError(f"unmapped vae tensor: {k}")


def to_ldm(unet_sd, unet_cfg, vae_sd, vae_cfg, clip_sd):
    """Full LDM state dict (dict name -> tensor) from the three diffusers/transformers state dicts."""
    out = {}
    for k, v in unet_sd.items():
        out[UNET_PREFIX + unet_key(k, unet_cfg)] = v
    for k, v in vae_sd.items():
        nk, is_lin = vae_key(k, vae_cfg)
        if is_lin and nk.endswith(".weight"):
            v = v.reshape(*v.shape, 1, 1)  # LDM stores them as 1x1 conv weights [C,C,1,1]
        out[VAE_PREFIX + nk] = v
    for k, v in clip_sd.items():
        out[CLIP_PREFIX + k] = v
    assert len(out) == len(unet_sd) + len(vae_sd) + len(clip_sd), "name collision"
    return out
