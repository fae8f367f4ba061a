#!/usr/bin/env python3
"""Makes tests/data/tokenizer/golden_basic.json: the token ids transformers 5's CLIPTokenizer (a
tokenizers-library tokenizer: NFC, runs of whitespace to one space, lowercase; no ftfy) gives for
every prompt of golden.json, in its order. sd-gen's --text-cleanup basic is held to it
(tests/test_tokenizer.cpp); golden.json (transformers 4 with ftfy) holds --text-cleanup ftfy.

The tokenizer is built from the vocabulary and merges derived from weights/bpe_simple_vocab_16e6.txt.gz
as make_tokenizer_golden.py derives them. Run with the current releases
(tests/reference/requirements-current.txt; torch is not needed):
  /tmp/curenv/bin/python tests/reference/make_tokenizer_basic_golden.py
"""
import hashlib
import json
import os
import sys
import tempfile

import tokenizers
import transformers
from transformers import CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_vocab  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BPE_GZ = os.path.join(ROOT, "weights", "bpe_simple_vocab_16e6.txt.gz")
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")


def main():
    assert int(transformers.__version__.split(".")[0]) >= 5, "needs transformers 5"
    with open(os.path.join(DATA, "golden.json"), encoding="utf-8") as f:
        texts = [c["text"] for c in json.load(f)["cases"]]
    with tempfile.TemporaryDirectory() as tmp:
        with open(BPE_GZ, "rb") as f:
            clip_vocab.write(f.read(), os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"))
        tok = CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"))
    normalizer = json.loads(tok.backend_tokenizer.to_str())["normalizer"]
    ids = [tok(t, add_special_tokens=False).input_ids for t in texts]
    for t, i in zip(texts, ids):  # padding and truncation as in golden.json: BOS + 75 + EOS, EOS pads
        padded = tok(t, padding="max_length", max_length=77, truncation=True).input_ids
        assert padded == ([49406] + i[:75] + [49407] + [49407] * 77)[:77], t
    # The texts are golden.json's; their hash keeps the two files paired.
    digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
    out = {
        "generator": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                      "python": sys.version.split()[0]},
        "cleanup": "transformers 5 CLIPTokenizer normalizer: " + json.dumps(normalizer),
        "texts_sha256": digest,
        "ids": ids,
    }
    with open(os.path.join(DATA, "golden_basic.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{len(ids)} cases written to {DATA}/golden_basic.json")


if __name__ == "__main__":
    main()
