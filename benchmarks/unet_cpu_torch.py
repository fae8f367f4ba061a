"""PyTorch/diffusers side of the CPU UNet benchmark: one evaluation of the full-size SD v1.5 UNet
(random weights of the real shapes) on batch 2, 64x64x4 latent, 77-token context of width 768.
Prints one JSON line: {"impl": "pytorch", "seconds": best, "runs": [...], ...}.
Needs torch + diffusers (tests/reference/requirements.txt). Run through benchmarks/unet_cpu.sh.
"""
import argparse
import json
import time

import torch
from diffusers import UNet2DConditionModel

p = argparse.ArgumentParser()
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--batch", type=int, default=2)
# bf16: the model's weights and inputs in torch.bfloat16 (oneDNN's bf16 kernels: AVX512-BF16, AMX)
p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
args = p.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

torch.manual_seed(0)
# SD v1.5 unet/config.json
unet = UNet2DConditionModel(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32).eval()
x = torch.randn(args.batch, 4, 64, 64)
t = torch.tensor([961] * args.batch)
ctx = torch.randn(args.batch, 77, 768)
if args.dtype == "bf16":
    unet, x, ctx = unet.to(torch.bfloat16), x.to(torch.bfloat16), ctx.to(torch.bfloat16)
runs = []
with torch.inference_mode():
    unet(x, t, ctx)  # warm-up (allocator, oneDNN primitive caches)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        unet(x, t, ctx)
        runs.append(time.perf_counter() - t0)
print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "batch": args.batch, "dtype": args.dtype, "seconds": min(runs), "runs": runs}))
