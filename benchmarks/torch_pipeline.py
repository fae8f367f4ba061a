"""The sd-gen bench workload in PyTorch/diffusers, for benchmarks/compare.sh: text encoder (the
negative and the positive prompt), DDIM steps of the UNet with classifier-free guidance (one call on
2 x batch latents), VAE decode and conversion to 8-bit images, on random weights of the SD v1.5
architecture built from its configs in code (no download, no network). Attention is PyTorch's
scaled_dot_product_attention (diffusers' AttnProcessor2_0); --compile on wraps UNet and VAE decoder
in torch.compile where this machine can compile (compilation happens in the warm-up, untimed).

Prints, with --json, one JSON object per configuration in sd-gen bench's field names (units in the
names); FLOP counts and MFU are left null here: compare.sh takes them from sd-gen's one analytic
count (src/pipeline/flops.cpp), which is the same workload. Progress goes to stderr.

Needs torch, diffusers, transformers (tests/reference/requirements.txt pins them). fp16 on a GPU
only (the CPU fp16 kernels of PyTorch are not what anyone runs); bf16 on both (on the CPU, PyTorch
runs bf16 through oneDNN: AMX or AVX512-BF16 where the CPU has them).

  python3 benchmarks/torch_pipeline.py --device cpu --batch 1 --steps 2 --precision fp32 --json
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from transformers import CLIPTextConfig, CLIPTextModel


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def stats(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def build_models(device, dtype):
    torch.manual_seed(0)
    # SD v1.5 text_encoder/config.json (CLIP ViT-L/14 text tower).
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    # SD v1.5 unet/config.json.
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    # SD v1.5 vae/config.json.
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
        block_out_channels=(128, 256, 512, 512), sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215)
    unet.set_attn_processor(AttnProcessor2_0())
    vae.set_attn_processor(AttnProcessor2_0())
    return [m.to(device=device, dtype=dtype).eval() for m in (clip, unet, vae)]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_config(args, device, precision, compile_on):
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    label = f"{precision}, compile {'on' if compile_on else 'off'}"
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    log(f"torch: {label}: building random SD v1.5 models ({device})")
    t0 = time.perf_counter()
    clip, unet, vae = build_models(device, dtype)
    sync(device)
    weight_load_s = time.perf_counter() - t0
    decode = vae.decode
    if compile_on:
        unet = torch.compile(unet)
        decode = torch.compile(vae.decode)
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                          beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                          steps_offset=1)
    # Token ids stand in for the tokenizer (microseconds in either program): BOS, a few words,
    # EOS padded to 77, for the negative (empty) and the positive prompt.
    neg = [49406, 49407] + [49407] * 75
    pos = [49406, 320, 7502, 536, 8563, 267, 2870, 3086, 49407] + [49407] * 68
    ids = torch.tensor([neg, pos], device=device)
    cfg = args.guidance > 1.0
    lh, lw = args.height // 8, args.width // 8
    times = {"total": [], "text": [], "unet": [], "vae": []}
    for k in range(args.repeats + 1):
        log(f"torch: {label}: " + ("warm-up" if k == 0 else f"run {k}/{args.repeats}"))
        with torch.inference_mode():
            sync(device)
            t_start = time.perf_counter()
            hidden = clip(ids if cfg else ids[1:]).last_hidden_state
            context = hidden.repeat_interleave(args.batch, dim=0)
            sync(device)
            t_text = time.perf_counter()
            g = torch.Generator("cpu").manual_seed(args.seed)
            x = torch.randn((args.batch, 4, lh, lw), generator=g).to(device)
            sched.set_timesteps(args.steps)
            for t in sched.timesteps:
                xin = torch.cat([x, x]) if cfg else x
                eps = unet(xin.to(dtype), t.to(device), encoder_hidden_states=context).sample.float()
                if cfg:
                    u, c = eps.chunk(2)
                    eps = u + args.guidance * (c - u)
                x = sched.step(eps, t, x).prev_sample
            sync(device)
            t_unet = time.perf_counter()
            img = decode((x / 0.18215).to(dtype)).sample
            img = ((img.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
            t_end = time.perf_counter()
        log(f"torch: text {t_text - t_start:.3f} s, unet {t_unet - t_text:.3f} s, "
            f"vae {t_end - t_unet:.3f} s, total {t_end - t_start:.3f} s")
        if k == 0:
            continue
        times["total"].append(t_end - t_start)
        times["text"].append(t_text - t_start)
        times["unet"].append((t_unet - t_text) / args.steps)
        times["vae"].append(t_end - t_unet)
    cuda = device.type == "cuda"
    peak_dev = torch.cuda.max_memory_reserved() if cuda else None
    rss = peak_rss_bytes()
    return {
        "tool": "pytorch", "torch": torch.__version__, "attention": "sdpa",
        "device": device.type,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu",
        "precision": precision, "cuda_graphs": None, "compile": compile_on,
        "model": "random:sd15 (diffusers)", "batch": args.batch, "steps": args.steps,
        "width": args.width, "height": args.height, "guidance": args.guidance,
        "repeats": args.repeats, "threads": torch.get_num_threads(),
        "total_s": stats(times["total"]), "text_s": stats(times["text"]),
        "unet_per_step_s": stats(times["unet"]), "vae_s": stats(times["vae"]),
        "images_per_s": stats([args.batch / t for t in times["total"]]),
        "weight_load_s": weight_load_s,
        "peak_memory_bytes": peak_dev if cuda else rss,
        "peak_memory_kind": "device" if cuda else "resident_set",
        "peak_rss_bytes": rss, "peak_device_bytes": peak_dev,
        "clip_flop": None, "unet_flop_per_step": None, "vae_flop": None, "total_flop": None,
        "peak_flop_per_s": None, "peak_flop_per_s_source": "see sd-gen bench (compare.sh)", "mfu": None,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32,fp16,bf16", help="comma-separated fp32, fp16, bf16 (fp16: GPU only)")
    p.add_argument("--compile", default=None, help="comma-separated off, on (default: off,on on a GPU, off on the CPU)")
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeats", type=int, default=None, help="timed runs after one warm-up (default 3; 1 on the CPU)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all CPUs of this process)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.batch < 1 or args.steps < 1 or args.width % 64 or args.height % 64:
        p.error("batch and steps must be >= 1, width and height multiples of 64")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available to PyTorch")
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    if args.repeats is None:
        args.repeats = 3 if device.type == "cuda" else 1
    precisions = [s.strip() for s in args.precision.split(",") if s.strip()]
    for s in precisions:
        if s not in ("fp32", "fp16", "bf16"):
            p.error(f"--precision {s!r} is not one of fp32, fp16, bf16")
    if device.type == "cpu" and "fp16" in precisions:
        log("torch: fp16 skipped on the CPU (GPU only)")
        precisions = [s for s in precisions if s != "fp16"]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in sd-gen
        torch.backends.cudnn.allow_tf32 = False
    compiles = args.compile or ("off,on" if device.type == "cuda" else "off")
    compiles = [c.strip() == "on" for c in compiles.split(",") if c.strip()]
    results = []
    for prec in precisions:
        for comp in compiles:
            try:
                results.append(run_config(args, device, prec, comp))
            except Exception as e:  # torch.compile may not work on every machine: say so, go on
                log(f"torch: {prec}, compile {'on' if comp else 'off'}: failed: {type(e).__name__}: {e}")
    for r in results:
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{r['precision']:5} compile {'on ' if r['compile'] else 'off'}  total {r['total_s']['median']:.3f} s  "
                  f"text {r['text_s']['median']:.3f} s  unet/step {r['unet_per_step_s']['median']:.3f} s  "
                  f"vae {r['vae_s']['median']:.3f} s  load {r['weight_load_s']:.2f} s  "
                  f"peak {r['peak_memory_bytes'] / 1e9:.2f} GB ({r['peak_memory_kind']})")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
