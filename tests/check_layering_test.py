#!/usr/bin/env python3
"""The layering check can fail: on a copy of the project's src/, include/ and kernels/ it passes
(as the real tree must), and each planted upward include makes it fail and name the file. Run:
check_layering_test.py [ROOT]; exit 0 when the check behaved every time."""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check_layering.py")

# (file to plant the include in, the include): one upward include per rule of the table.
PLANTS = [
    ("src/core/tensor.cpp", "io/safetensors.h"),          # core -> io
    ("src/core/tensor.cpp", "sdgen/backend.h"),           # core -> backend (its public header)
    ("src/core/tensor.cpp", "backend/cpu/cpu_backend.h"), # core -> backend
    ("src/core/rng.cpp", "sampler/schedule.h"),           # core -> sampler
    ("src/core/rng.cpp", "pipeline/pipeline.h"),          # core -> pipeline
    ("src/core/rng.cpp", "cli/options.h"),                # core -> cli
    ("src/backend/ops.cpp", "sampler/sampler.h"),         # backend -> sampler
    ("src/backend/cpu/cpu_backend.cpp", "io/checkpoint.h"),  # backend -> io
    ("src/io/safetensors.cpp", "sdgen/ops.h"),            # io -> backend
    ("src/io/checkpoint.cpp", "pipeline/pipeline.h"),     # io -> pipeline
    ("src/io/lora.cpp", "cli/options.h"),                 # io -> cli
    ("src/sampler/sampler.cpp", "nn/nn.h"),               # sampler -> nn
    ("src/unet/unet.cpp", "vae/vae.h"),                   # unet -> vae
    ("src/text/clip.cpp", "unet/unet.h"),                 # text -> unet
    ("src/pipeline/pipeline.cpp", "cli/options.h"),       # pipeline -> cli
    ("kernels/softmax.cu", "sampler/ddim.h"),             # kernels -> sampler
]


def copy_tree(root, dst):
    for top in ("src", "include", "kernels"):
        shutil.copytree(os.path.join(root, top), os.path.join(dst, top))


def run_check(tree):
    r = subprocess.run([sys.executable, CHECK, tree], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..")
    failures = []
    with tempfile.TemporaryDirectory(prefix="sdgen_layering_") as tmp:
        clean = os.path.join(tmp, "clean")
        copy_tree(root, clean)
        code, out = run_check(clean)
        if code != 0:
            failures.append(f"the unchanged copy fails the check (exit {code}):\n{out}")
        for i, (where, include) in enumerate(PLANTS):
            tree = os.path.join(tmp, f"plant{i}")
            copy_tree(root, tree)
            path = os.path.join(tree, where)
            if not os.path.isfile(path) or not os.path.isfile(os.path.join(tree, "src", include)) and \
                    not os.path.isfile(os.path.join(tree, "include", include)):
                failures.append(f"plant {where} -> {include}: a file is missing; update PLANTS")
                continue
            with open(path, "a", encoding="utf-8") as f:
                f.write(f'\n#include "{include}"\n')
            code, out = run_check(tree)
            if code != 1 or where not in out:
                failures.append(f"{where} including {include}: exit {code}, expected 1 naming the file:\n{out}")
            shutil.rmtree(tree)
    for f in failures:
        print(f)
    print(f"check_layering_test: {len(PLANTS) - len([f for f in failures if 'plant' in f or 'including' in f])}"
          f"/{len(PLANTS)} planted upward includes caught" + ("" if not failures else "; FAILED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
