#!/usr/bin/env python3
"""PyTorch checkpoints (torch.save's zip format) for tests/test_torch_checkpoint.cpp, made by torch itself.

  tests/data/tiny_sd/tiny_sd_fp16.ckpt(.json)   {"state_dict": the tensors of tiny_sd_fp16.safetensors, "global_step",
                                         "epoch"}: an LDM checkpoint as Lightning saves one
  tests/data/ckpt/dtypes.ckpt            f32/f16/bf16/i64 tensors, a view with a storage offset (two
                                         tensors sharing one storage), an nn.Parameter, an OrderedDict
  tests/data/ckpt/dtypes_expected.safetensors   the same tensors, as safetensors (the expected values)
  tests/data/ckpt/plain_state_dict.pt    a bare state dict (no "state_dict" key)
  tests/data/ckpt/evil_reduce.ckpt       an object whose __reduce__ is os.system: must be refused, never run
  tests/data/ckpt/evil_class.ckpt        an instance of a class of the file's own (__main__.Thing)
  tests/data/ckpt/eval_global.ckpt       a REDUCE of builtins.eval
  tests/data/ckpt/truncated.ckpt         the first 60% of dtypes.ckpt
  tests/data/ckpt/compressed.ckpt        dtypes.ckpt re-zipped with deflate
  tests/data/ckpt/legacy.pt              torch.save(..., _use_new_zipfile_serialization=False)
  tests/data/ckpt/noncontiguous.ckpt     a transposed view
  tests/data/ckpt/vae_diffusion_pytorch_model.bin   the tiny folder's vae/ weights as a .bin (torch.save of
                                         the state dict, as diffusers' save_pretrained(safe_serialization=False))

Usage: /tmp/curenv/bin/python tests/reference/make_ckpt_goldens.py   (torch from requirements-current.txt)
"""
import collections
import os
import shutil
import zipfile

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
OUT = os.path.join(DATA, "ckpt")


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sdgen_pickle_was_executed",))


class Thing:
    def __init__(self):
        self.x = 1


class EvalCall:
    def __reduce__(self):
        return (eval, ("1+1",))


def main():
    os.makedirs(OUT, exist_ok=True)
    src = os.path.join(DATA, "tiny_sd", "tiny_sd_fp16.safetensors")
    sd = load_file(src)
    ckpt = os.path.join(DATA, "tiny_sd", "tiny_sd_fp16.ckpt")
    torch.save({"state_dict": sd, "global_step": 1234, "epoch": 5}, ckpt)
    # The tiny model's sizes that shapes cannot tell (its norm groups): the same sidecar as its
    # safetensors twin's.
    shutil.copyfile(src + ".json", ckpt + ".json")

    # The tiny folder's VAE as older diffusers saved it (save_pretrained(safe_serialization=False)).
    vae = load_file(os.path.join(DATA, "tiny_sd", "diffusers", "vae", "diffusion_pytorch_model.safetensors"))
    torch.save(vae, os.path.join(OUT, "vae_diffusion_pytorch_model.bin"))

    g = torch.Generator().manual_seed(77)
    base = torch.randn(20, generator=g)
    d = collections.OrderedDict()
    d["f32"] = torch.randn(3, 4, generator=g)
    d["f16"] = torch.randn(5, generator=g).half()
    d["bf16"] = torch.randn(2, 3, generator=g).bfloat16()
    d["i64"] = torch.arange(7)
    d["view_a"] = base[2:8].view(2, 3)       # shares base's storage, offset 2
    d["view_b"] = base[10:14]                # offset 10
    d["param"] = torch.nn.Parameter(torch.randn(4, generator=g), requires_grad=False)
    d["scalar"] = torch.tensor(3.5)
    torch.save({"state_dict": d, "global_step": 3, "lr": 1e-4, "name": "test"}, os.path.join(OUT, "dtypes.ckpt"))
    save_file({k: v.detach().clone().contiguous() for k, v in d.items()}, os.path.join(OUT, "dtypes_expected.safetensors"))
    torch.save({"w": torch.ones(2, 2), "b": torch.zeros(2)}, os.path.join(OUT, "plain_state_dict.pt"))

    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": Evil()}, os.path.join(OUT, "evil_reduce.ckpt"))
    torch.save({"state_dict": {"w": torch.ones(2)}, "thing": Thing()}, os.path.join(OUT, "evil_class.ckpt"))
    torch.save({"state_dict": {"w": torch.ones(2)}, "x": EvalCall()}, os.path.join(OUT, "eval_global.ckpt"))
    raw = open(os.path.join(OUT, "dtypes.ckpt"), "rb").read()
    open(os.path.join(OUT, "truncated.ckpt"), "wb").write(raw[: len(raw) * 6 // 10])
    with zipfile.ZipFile(os.path.join(OUT, "dtypes.ckpt")) as src, \
            zipfile.ZipFile(os.path.join(OUT, "compressed.ckpt"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save({"w": torch.randn(3, 4, generator=g).t()}, os.path.join(OUT, "noncontiguous.ckpt"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
