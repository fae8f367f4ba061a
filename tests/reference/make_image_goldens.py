#!/usr/bin/env python3
"""Goldens of reading and resizing input pictures (tests/test_image_input.cpp), from Pillow and diffusers.

Writes small input files to tests/data/images/ and what the reference tools make of them to
tests/data/golden/images.safetensors (HWC arrays of 8-bit values, stored as float16):
  - resize.<name>:  PIL Image.resize(size, LANCZOS[, box]) of tests/data/images/src_37x23.png, up, down,
                    odd ratios, one-pixel sides, and the empty boxes A1111's fill mode uses;
  - fit.<mode>.<w>x<h>: diffusers' VaeImageProcessor.resize(image, h, w, resize_mode) with
                    mode default (our "just"), crop and fill — the modes A1111 also has;
  - alpha.rgba / alpha.la: A1111's flatten (modules/images.py: paste onto a white RGBA background
                    with the image as mask, then RGB) of an RGBA picture and of a grey+alpha one
                    (LA converted to RGBA first: our documented choice);
  - grey:           PIL convert('RGB') of an 8-bit grey PNG;
  - rgb16:          a 16-bit RGB PNG (written here with zlib) as PIL opens it: the high bytes;
  - exif.<o>:       ImageOps.exif_transpose of a PNG whose eXIf chunk says orientation o (1..8), and
                    of JPEGs with orientations 3, 6 and 8 (quadrant colours: any decoder agrees to
                    a few levels inside the quadrants).

Usage: /tmp/curenv/bin/python tests/reference/make_image_goldens.py   (from the repository root)
"""
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors.torch import save_file

import PIL
from diffusers.image_processor import VaeImageProcessor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGES = os.path.join(ROOT, "tests", "data", "images")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")


def picture(w, h, seed):
    """Smooth gradients, a hard edge and noise: a picture that exercises every Lanczos tap."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = 255 * x / max(w - 1, 1)
    g = 255 * (0.5 + 0.5 * np.sin(y / 3.0 + x / 5.0))
    b = np.where((x // 4 + y // 4) % 2 == 0, 230, 20)
    a = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def png16(path, arr16):
    h, w, _ = arr16.shape
    raw = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)


def flatten(img):  # A1111's modules/images.flatten with its default background "#ffffff"
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, "#ffffff")
        background.paste(img, mask=img)
        img = background
    return img.convert("RGB")


def main():
    os.makedirs(IMAGES, exist_ok=True)
    out = {}

    def put(key, img):
        # float16 holds 0..255 exactly (safetensors readers of ours take float types)
        out[key] = torch.from_numpy(np.array(img.convert("RGB"), dtype=np.float16))

    src = Image.fromarray(picture(37, 23, 1))
    src.save(os.path.join(IMAGES, "src_37x23.png"))
    for (w, h) in [(64, 48), (16, 16), (100, 23), (37, 9), (5, 61), (1, 1), (37, 23), (74, 46), (12, 8)]:
        put(f"resize.{w}x{h}", src.resize((w, h), Image.LANCZOS))
    for name, size, box in [("box_top", (37, 5), (0, 0, 37, 0)), ("box_bottom", (37, 5), (0, 23, 37, 23)),
                            ("box_left", (4, 23), (0, 0, 0, 23)), ("box_right", (4, 23), (37, 0, 37, 23)),
                            ("box_mid", (20, 30), (3.5, 2.25, 30.0, 20.5))]:
        put(f"resize.{name}", src.resize(size, Image.LANCZOS, box=box))
    proc = VaeImageProcessor(vae_scale_factor=8)
    for mode in ["default", "crop", "fill"]:
        for (w, h) in [(64, 64), (64, 24), (24, 64), (74, 46)]:
            put(f"fit.{mode}.{w}x{h}", proc.resize(src, h, w, resize_mode=mode))

    rgba = picture(19, 13, 2)
    alpha = np.tile(np.linspace(0, 255, 19).round().astype(np.uint8), (13, 1))
    alpha[::3] = 128
    im = Image.fromarray(np.dstack([rgba, alpha]), "RGBA")
    im.save(os.path.join(IMAGES, "alpha_rgba.png"))
    put("alpha.rgba", flatten(Image.open(os.path.join(IMAGES, "alpha_rgba.png"))))
    la = Image.fromarray(np.dstack([rgba[..., 1], alpha]), "LA")
    la.save(os.path.join(IMAGES, "alpha_la.png"))
    put("alpha.la", flatten(Image.open(os.path.join(IMAGES, "alpha_la.png")).convert("RGBA")))
    Image.fromarray(rgba[..., 0], "L").save(os.path.join(IMAGES, "grey.png"))
    put("grey", Image.open(os.path.join(IMAGES, "grey.png")).convert("RGB"))

    rng = np.random.default_rng(3)
    a16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint32).astype(np.uint16)
    png16(os.path.join(IMAGES, "rgb16.png"), a16)
    opened = Image.open(os.path.join(IMAGES, "rgb16.png"))
    assert opened.mode == "RGB", opened.mode
    put("rgb16", opened)
    assert (np.asarray(opened) == (a16 >> 8)).all(), "PIL reads 16-bit RGB as the high bytes"

    base = Image.fromarray(picture(7, 5, 4))
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        path = os.path.join(IMAGES, f"exif{o}.png")
        base.save(path, exif=exif.tobytes())
        put(f"exif.{o}", ImageOps.exif_transpose(Image.open(path)))
    quad = np.zeros((32, 48, 3), np.uint8)
    quad[:16, :24] = (230, 30, 30)
    quad[:16, 24:] = (30, 230, 30)
    quad[16:, :24] = (30, 30, 230)
    quad[16:, 24:] = (230, 230, 30)
    for o in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = o
        path = os.path.join(IMAGES, f"exif{o}.jpg")
        Image.fromarray(quad).save(path, quality=95, exif=exif.tobytes())
        put(f"exif_jpeg.{o}", ImageOps.exif_transpose(Image.open(path)))

    save_file(out, os.path.join(GOLDEN, "images.safetensors"),
              metadata={"made_by": "tests/reference/make_image_goldens.py", "pillow": PIL.__version__,
                        "layout": "[H, W, 3] 8-bit values stored as float16"})
    print(len(out), "goldens")


if __name__ == "__main__":
    main()
