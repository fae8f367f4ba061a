#!/usr/bin/env python3
"""Conditioning goldens for long prompts and A1111 emphasis (tests/test_prompts.cpp).

An independent implementation of stable-diffusion-webui's prompt handling, written from its
documented behaviour (prompt_parser.parse_prompt_attention, FrozenCLIPEmbedderWithCustomWords'
tokenize_line and its "Original" emphasis), run over transformers' CLIPTokenizer and CLIPTextModel
of the tiny model (tests/data/tiny_sd/diffusers):
  - parse: "(x)" x1.1, "[x]" /1.1, "(x:w)" sets w, "\\(" "\\)" "\\[" "\\]" "\\\\" escape, a lone
    backslash is dropped, unmatched closers are literal, unclosed openers apply to the rest,
    "BREAK" (whole word) ends a chunk, equal neighbours merge;
  - chunk: each piece tokenized alone, 75 tokens per chunk, an overflowing chunk split after a
    comma among its last 20 tokens, each chunk [BOS] + tokens + EOS padding + [EOS];
  - encode each chunk alone, z *= weight per token, z *= mean(z before) / mean(z after) per chunk,
    chunks concatenated along the token axis.
Two choices of ours where A1111 misbehaves (src/text/prompt_weights.h): a BREAK inside brackets
still breaks, and "(x:1.2.3)" (no number) is literal text.

Writes tests/data/golden/prompts.safetensors (p<i>.ids int64 [k*77], p<i>.weights f32 [k*77],
p<i>.cond f32 [k*77, hidden], p<i>.z the same before the emphasis) and prompts.json (the prompts, their emphasis flag, chunk counts).
Usage: /tmp/curenv/bin/python tests/reference/make_prompt_goldens.py   (requirements-current.txt)
"""
import json
import os
import re

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_sd", "diffusers")
GOLDEN_DIR = os.path.join(ROOT, "tests", "data", "golden")

CHUNK = 75
BACKTRACK = 20

# One regex token per alternative, in A1111's order of precedence.
TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
BREAK = re.compile(r"\s*\bBREAK\b\s*")


def parse(text):
    """[(text, weight)] with None for a BREAK."""
    out, rounds, squares = [], [], []

    def scale(start, m):
        for item in out[start:]:
            if item[0] is not None:
                item[1] *= m

    def literal(s):
        for k, part in enumerate(BREAK.split(s)):
            if k:
                out.append([None, None])
            out.append([part, 1.0])

    for m in TOKEN.finditer(text):
        tok, num = m.group(0), m.group(1)
        if tok[0] == "\\":
            out.append([tok[1:], 1.0])
        elif tok == "(":
            rounds.append(len(out))
        elif tok == "[":
            squares.append(len(out))
        elif num is not None:
            try:
                w = float(num)
            except ValueError:
                w = None
            if rounds and w is not None:
                scale(rounds.pop(), w)
            else:
                literal(tok)
        elif tok == ")" and rounds:
            scale(rounds.pop(), 1.1)
        elif tok == "]" and squares:
            scale(squares.pop(), 1 / 1.1)
        else:
            literal(tok)
    for pos in rounds:
        scale(pos, 1.1)
    for pos in squares:
        scale(pos, 1 / 1.1)
    if not out:
        out = [["", 1.0]]
    merged = []
    for item in out:
        if merged and item[0] is not None and merged[-1][0] is not None and merged[-1][1] == item[1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return merged


def chunks_of(tok, text, emphasis=True):
    bos, eos = tok.bos_token_id, tok.eos_token_id
    comma = tok(",", add_special_tokens=False)["input_ids"][0]
    pieces = parse(text) if emphasis else [[text, 1.0]]
    done, ids, ws = [], [], []
    last_comma = -1

    def close():
        nonlocal ids, ws, last_comma
        pad = CHUNK - len(ids)
        done.append(([bos] + ids + [eos] * pad + [eos], [1.0] + ws + [1.0] * pad + [1.0]))
        ids, ws, last_comma = [], [], -1

    for piece, weight in pieces:
        if piece is None:
            close()
            continue
        for t in tok(piece, add_special_tokens=False)["input_ids"]:
            if t == comma:
                last_comma = len(ids)
            elif len(ids) == CHUNK and last_comma >= 0 and CHUNK - last_comma <= BACKTRACK:
                keep = last_comma + 1
                moved = ids[keep:], ws[keep:]
                ids, ws = ids[:keep], ws[:keep]
                close()
                ids, ws = list(moved[0]), list(moved[1])
            if len(ids) == CHUNK:
                close()
            ids.append(t)
            ws.append(weight)
    if ids or not done:
        close()
    return done


def condition(model, chunks):
    """(the conditioning, CLIP's hidden states before the emphasis), each [k*77, hidden]."""
    zs, raw = [], []
    for ids, ws in chunks:
        with torch.no_grad():
            z = model(torch.tensor([ids])).last_hidden_state[0]
        raw.append(z)
        w = torch.tensor(ws, dtype=torch.float32)
        if bool((w != 1).any()):
            before = z.mean()
            z = z * w[:, None]
            z = z * (before / z.mean())
        zs.append(z)
    return torch.cat(zs, 0), torch.cat(raw, 0)


WORDS = "cat dog red blue house tree sky river stone cloud green bird moon sun road boat".split()


def words(n, start=0):
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def prompts():
    p = [
        ("", True), ("a photo of a cat", True), ("a photo of a cat", False),
        ("a (red) house", True), ("a ((red)) house", True), ("a (((red))) house", True),
        ("a [blue] car", True), ("a [[blue]] car", True), ("a ([red] house) by (the lake:1.3)", True),
        ("(cat:0.5), dog", True), ("(cat:1.3) and (dog: 1.3 )", True), ("(cat:-1) dog", True),
        ("(cat:1.5:2) dog", True), ("((cat:1.2) dog:0.8) bird", True), ("(cat) (dog:1.1)", True),
        ("\\(not emphasis\\) and \\[nor this\\]", True), ("a back\\\\slash and a lone \\ one", True),
        ("a (cat", True), ("a cat)", True), ("a [cat", True), ("a cat]", True), ("((a) cat", True),
        ("(a] cat", True), ("[a) cat]", True), ("a (cat:1.3 dog", True), ("(a:b) c:d", True),
        ("(cat:1.2.3) dog", True), ("())(([]", True), ("()", True),
        ("a cat BREAK a dog", True), ("BREAK a dog", True), ("a cat BREAK", True),
        ("a cat BREAK BREAK a dog", True), ("a catBREAK dog, a break b", True),
        ("(red) BREAK [blue]", True), ("(a cat BREAK a dog)", True), ("(a) BREAK (b) BREAK c", False),
        ("(red:1.3) [blue] BREAK c", False),
    ]
    p += [(words(75), True), (words(76), True), (words(77), True), (words(150), True),
          (words(151), True), (words(300), True), (words(300, 3), False)]
    # Commas near a chunk's end: the last comma at index 70, 55 (just inside 20), 54 (just outside),
    # 74 (the chunk's last token) and 75 (the first token that no longer fits).
    for at in (70, 55, 54, 74, 75):
        p.append((words(at) + ", " + words(40, 5), True))
    p += [
        ("(" + words(100) + ":1.3), " + words(30, 2), True),
        (words(60) + ", [" + words(30, 1) + "] BREAK " + words(80, 2) + ", ((" + words(10) + "))", True),
        (", ".join(words(4, i) for i in range(40)), True),
        (words(200), True),
    ]
    return p


def main():
    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(os.path.join(MODEL, "tokenizer"))
    model = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval()
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    for w in WORDS:  # the long prompts' token counts are their word counts
        assert len(tok(w, add_special_tokens=False)["input_ids"]) == 1, w
    tensors, meta = {}, []
    for i, (text, emphasis) in enumerate(prompts()):
        ch = chunks_of(tok, text, emphasis)
        tensors[f"p{i}.ids"] = torch.tensor([t for ids, _ in ch for t in ids], dtype=torch.int64)
        tensors[f"p{i}.weights"] = torch.tensor([w for _, ws in ch for w in ws], dtype=torch.float32)
        cond, raw = condition(model, ch)
        tensors[f"p{i}.cond"] = cond.contiguous()
        tensors[f"p{i}.z"] = raw.contiguous()
        meta.append({"prompt": text, "emphasis": emphasis, "chunks": len(ch)})
    save_file(tensors, os.path.join(GOLDEN_DIR, "prompts.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(GOLDEN_DIR, "prompts.json"), "w") as f:
        json.dump({"model": "tests/data/tiny_sd/diffusers", "prompts": meta}, f, indent=1)
        f.write("\n")
    print(len(meta), "prompts,", sum(m["chunks"] for m in meta), "chunks")


if __name__ == "__main__":
    main()
