#!/usr/bin/env python3
"""Records torch.randn on a CUDA generator, for the `--rng philox` test (tests/test_rng.cpp,
Rng.PhiloxMatchesCudaGoldenWhenPresent), into tests/data/golden/philox.safetensors.

Needs a machine with an NVIDIA GPU and a CUDA build of torch; run once from the repository root:
    python tests/reference/make_philox_golden.py [--out tests/data/golden/philox.safetensors]
then commit the file. Nothing else in the repository depends on a GPU.

Tensor names (the same scheme as randn.safetensors):
    seed<S>_shape_<d0>x<d1>...            one torch.randn(shape, generator=Generator('cuda').manual_seed(S))
    seq_<x>_call<k>_seed<S>_shape_<...>   call k of consecutive torch.randn calls on ONE cuda generator
Values are stored float32 on the CPU, flat row-major; the file's metadata records the torch and CUDA
versions and the GPU, because torch's element order for tensors larger than the kernel's thread count
depends on the GPU's multiprocessor count (the cases here all stay below it; see src/core/rng.h).
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# the shapes (1x4x64x64, 3x4x64x64) and sizes that are not a multiple of 4
SEEDS = [0, 1, 42, 1234567, 2**32 + 5, 2**63 + 3]
SHAPES = [(1, 4, 64, 64), (3, 4, 64, 64), (15,), (1, 3, 5, 7), (2, 3, 11), (1, 4, 8, 8)]
SEQUENCES = [("seq_a", 42, [(1, 4, 8, 8), (1, 4, 8, 8)]),
             ("seq_b", 7, [(1, 4, 64, 64), (1, 4, 64, 64), (15,)]),
             ("seq_c", 2**32 + 5, [(3, 5), (2, 3, 11)])]


def shape_name(shape):
    return "x".join(str(s) for s in shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "golden", "philox.safetensors"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("make_philox_golden.py: no CUDA device; this script must run on a GPU machine")
    dev = torch.device("cuda")
    tensors = {}
    for seed in SEEDS:
        for shape in SHAPES:
            g = torch.Generator(device=dev).manual_seed(seed)
            tensors[f"seed{seed}_shape_{shape_name(shape)}"] = \
                torch.randn(shape, generator=g, device=dev, dtype=torch.float32).cpu().contiguous()
    for name, seed, shapes in SEQUENCES:
        g = torch.Generator(device=dev).manual_seed(seed)
        for i, shape in enumerate(shapes):
            tensors[f"{name}_call{i}_seed{seed}_shape_{shape_name(shape)}"] = \
                torch.randn(shape, generator=g, device=dev, dtype=torch.float32).cpu().contiguous()
    # the default generator too (torch.manual_seed + device='cuda'): the same stream
    torch.manual_seed(42)
    check = torch.randn((1, 4, 8, 8), device=dev).cpu()
    assert torch.equal(check, tensors["seed42_shape_1x4x8x8"]), "default cuda generator differs from Generator('cuda')"
    props = torch.cuda.get_device_properties(dev)
    meta = {"what": "torch.randn(shape, generator=torch.Generator('cuda').manual_seed(seed), device='cuda') float32",
            "torch": torch.__version__, "cuda": str(torch.version.cuda), "gpu": props.name,
            "multiprocessors": str(props.multi_processor_count),
            "script": "tests/reference/make_philox_golden.py",
            "cases": json.dumps(sorted(tensors))}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {args.out}: {len(tensors)} tensors ({props.name}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
