#!/usr/bin/env python3
"""Goldens of the canny preprocessor (src/io/canny.cpp, tests/test_canny.cpp): cv2.Canny of
committed pictures, as ControlNet's canny preprocessor calls it.

diffusers' ControlNet docs and A1111's sd-webui-controlnet both run cv2.Canny on the RGB array
itself (np.array of the PIL picture, channels R, G, B), with cv2's defaults (apertureSize 3,
L2gradient False), and stack the one-channel result to three channels; so does this script,
minus the stacking (the test compares each of R, G, B with the one channel).

tests/data/golden/canny.safetensors: canny.<picture>.<low>_<high> = cv2.Canny(rgb, low, high),
uint8 [H, W] (0 or 255). Metadata: "cv2" (the wheel's version), "numpy", "pictures",
"thresholds" (JSON lists).

tests/data/images/canny_80x60.png is written here too: a seeded smooth colour field with shapes
whose contrast differs per channel, so that the thresholds, the hysteresis (weak edges kept only
when joined to strong ones) and the per-channel choice of gradient all decide pixels; the other
pictures' edges are mostly hard and change little with the thresholds.

Usage: /tmp/curenv/bin/python tests/reference/make_canny_goldens.py   (from anywhere)
"""
import json
import os

import cv2
import numpy as np
from PIL import Image
from safetensors.numpy import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGES = os.path.join(ROOT, "tests", "data", "images")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")

PICTURES = ["canny_80x60.png", "init_128x64.png", "init_101x70.png", "control_48x40.png", "src_37x23.png"]
# (100, 200): the default of diffusers' docs and A1111's slider; (200, 100): swapped, which OpenCV
# accepts (it swaps them back); (0, 0): every nonzero gradient that is a local maximum.
THRESHOLDS = [(100, 200), (50, 150), (20, 60), (0, 0), (200, 100), (255, 255), (1, 1000)]


def write_synthetic():
    rng = np.random.default_rng(2024)
    # A coarse random field, upsampled bicubically: gradients of every strength.
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    field = np.array(Image.fromarray(coarse, "RGB").resize((80, 60), Image.BICUBIC)).astype(np.int32)
    y, x = np.mgrid[0:60, 0:80]
    # A disc strong in red only, a faint rectangle in green and blue (weak edges), a bright bar.
    field[(x - 25) ** 2 + (y - 30) ** 2 < 14 ** 2, 0] += 90
    field[(x >= 45) & (x < 70) & (y >= 10) & (y < 30), 1:] += 25
    field[(y >= 44) & (y < 48) & (x >= 40)] += 60
    field += rng.integers(-6, 7, size=field.shape)
    Image.fromarray(np.clip(field, 0, 255).astype(np.uint8), "RGB").save(os.path.join(IMAGES, "canny_80x60.png"))


def main():
    write_synthetic()
    tensors = {}
    for name in PICTURES:
        rgb = np.array(Image.open(os.path.join(IMAGES, name)).convert("RGB"))
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
        for low, high in THRESHOLDS:
            edges = cv2.Canny(rgb, low, high)  # apertureSize=3, L2gradient=False: cv2's defaults
            assert edges.shape == rgb.shape[:2] and set(np.unique(edges)) <= {0, 255}
            tensors[f"canny.{name}.{low}_{high}"] = np.ascontiguousarray(edges)
            print(f"{name} ({low}, {high}): {int((edges == 255).sum())} edge pixels")
        # OpenCV swaps thresholds given high < low: the swapped pair gives the same map.
        assert (tensors[f"canny.{name}.200_100"] == tensors[f"canny.{name}.100_200"]).all()
    meta = {"cv2": cv2.__version__, "numpy": np.__version__, "pictures": json.dumps(PICTURES),
            "thresholds": json.dumps(THRESHOLDS)}
    save_file(tensors, os.path.join(GOLDEN, "canny.safetensors"), metadata=meta)
    print("cv2", cv2.__version__)


if __name__ == "__main__":
    main()
