"""PNGs with a `parameters` text as AUTOMATIC1111's webui 1.10 writes it, for sd-gen's --from-png tests
(tests/test_from_png.cpp). Pillow writes the text as A1111 does (PngInfo.add_text): a tEXt chunk when
the text is Latin-1, an iTXt chunk (UTF-8) when it is not, a zTXt chunk when compressed.

A1111's infotext (modules/processing.py create_infotext), as documented by its output:
  line(s) 1..: the prompt
  "Negative prompt: " + the negative prompt        (only when there is one)
  last line: "Label: value" pairs joined by ", ", in A1111's order; a value holding ',', ':' or a
  newline is written as a JSON string (json.dumps, ensure_ascii=False); defaults are left out
  (RNG "GPU", Emphasis "Original", Clip skip 1).
The values are chosen here by hand; the test asserts the settings they mean.

Run: /tmp/curenv/bin/python tests/reference/make_a1111_pngs.py   (writes tests/data/a1111/*.png)
"""
import json
import os

from PIL import Image
from PIL.PngImagePlugin import PngInfo

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "a1111")


def quote(v):
    v = str(v)
    return v if ("," not in v and "\n" not in v and ":" not in v) else json.dumps(v, ensure_ascii=False)


def infotext(prompt, negative, params):
    pairs = ", ".join(f"{k}: {quote(v)}" for k, v in params)
    neg = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{neg}\n{pairs}".strip()


def save(name, text, zip_text=False):
    info = PngInfo()
    info.add_text("parameters", text, zip=zip_text)
    img = Image.new("RGB", (16, 16), (200, 120, 40))
    img.save(os.path.join(OUT, name), pnginfo=info)


def main():
    os.makedirs(OUT, exist_ok=True)
    # txt2img with hires-less settings, Karras in the separate field (A1111 >= 1.8), explicit CPU RNG.
    save("txt2img.png", infotext(
        "a lighthouse at dusk, (oil painting:1.2)\nwide shot",
        'blurry, "low" quality, text',
        [("Steps", 20), ("Sampler", "DPM++ 2M"), ("Schedule type", "Karras"), ("CFG scale", 6.5),
         ("Seed", 3456789012), ("Size", "512x768"), ("Model hash", "6ce0161689"), ("Model", "v1-5-pruned-emaonly"),
         ("VAE hash", "735e4c3a44"), ("VAE", "vae-ft-mse-840000-ema-pruned.safetensors"),
         ("Denoising strength", 0.55), ("Clip skip", 2), ("RNG", "CPU"), ("Emphasis", "None"),
         ("Lora hashes", "film: 1234abcd5678, grain: 9f8e7d6c5b4a"), ("TI hashes", "easyneg: ab12cd34ef56"),
         ("Version", "v1.10.1")]))
    # Not Latin-1: an iTXt chunk. Old-style sampler name with Karras, A1111's defaults left out
    # (no RNG: GPU; no seed mode: A1111 seeds each image seed+i), a batch.
    save("itxt.png", infotext(
        "富士山の風景, ukiyo-e", "",
        [("Steps", 30), ("Sampler", "Euler a"), ("CFG scale", 7), ("Seed", 42), ("Size", "640x448"),
         ("Model hash", "6ce0161689"), ("Model", "v1-5-pruned-emaonly"), ("Batch size", 4), ("Batch pos", 2),
         ("Version", "v1.10.1")]))
    # Compressed: a zTXt chunk, Latin-1 text.
    save("ztxt.png", infotext(
        "a café in Paris", "people",
        [("Steps", 12), ("Sampler", "DDIM"), ("CFG scale", 5), ("Seed", 7), ("Size", "512x512"),
         ("Eta DDIM", 0.3), ("Model", "v1-5"), ("Version", "v1.10.1")]), zip_text=True)
    # A field sd-gen does not reproduce.
    save("unsupported.png", infotext(
        "a portrait", "",
        [("Steps", 20), ("Sampler", "Euler"), ("CFG scale", 7), ("Seed", 1), ("Face restoration", "CodeFormer"),
         ("Size", "512x512"), ("Version", "v1.10.1")]))


if __name__ == "__main__":
    main()
