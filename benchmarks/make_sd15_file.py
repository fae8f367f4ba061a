#!/usr/bin/env python3
"""Writes a full-size SD v1.5 LDM single file (.safetensors) with random weights, for measuring
what loading a real file costs (random:sd15 generates tensors in memory, so it never maps a file).

    benchmarks/make_sd15_file.py OUT.safetensors [F32|F16]

Names and shapes are those of v1-5-pruned-emaonly.safetensors as diffusers' converters know them
(tests/data/checkpoint_name_map.json, model sd_v1_full), VAE encoder included, so the file has the
real one's size (4.27 GB in F32). Values: one block of normal(0, 0.02) draws tiled over every
tensor (norm weights around 1), enough to keep activations finite; Python alone (no numpy) would
take minutes to draw a billion values. Written streaming, so the script itself stays small.
"""
import json
import math
import os
import random
import struct
import sys

BLOCK = 1 << 20  # values per tiled block


def tensors():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "tests", "data", "checkpoint_name_map.json")) as f:
        doc = json.load(f)
    model = next(m for m in doc["models"] if m["name"] == "sd_v1_full")
    for t in model["tensors"]:
        yield t[0], t[1], t[3] if len(t) > 3 else t[2]


def block_bytes(fmt, offset, seed):
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 0.02) + offset for _ in range(BLOCK)]
    return struct.pack("<%d%s" % (BLOCK, fmt), *values)


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in ("F32", "F16")):
        sys.exit(__doc__)
    out, dtype = sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "F32"
    fmt, size = ("f", 4) if dtype == "F32" else ("e", 2)
    plain, norm = block_bytes(fmt, 0.0, 1), block_bytes(fmt, 1.0, 2)

    entries, header, offset = [], {}, 0
    for ldm, canon, shape in tensors():
        nbytes = math.prod(shape) * size
        is_norm = canon.endswith(".weight") and len(shape) == 1 and "norm" in canon
        entries.append((nbytes, norm if is_norm else plain))
        header[ldm] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)

    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for i, (nbytes, block) in enumerate(entries):
            start = (i * 4099 * size) % len(block)  # tensors do not all start alike
            while nbytes > 0:
                piece = block[start:start + nbytes]
                f.write(piece)
                nbytes -= len(piece)
                start = 0
    os.replace(tmp, out)
    print("%s: %d tensors, %.2f GB (%s)" % (out, len(entries), os.path.getsize(out) / 1e9, dtype))


if __name__ == "__main__":
    main()
