"""Derive a transformers CLIPTokenizer's vocab.json + merges.txt from OpenAI's bpe_simple_vocab_16e6.txt.gz,
building the vocabulary exactly as OpenAI's SimpleTokenizer does (clip/simple_tokenizer.py)."""
import gzip
import json


def bytes_to_unicode():
    # GPT-2's byte table: printable bytes map to themselves, the rest to 256+n in byte order
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build(bpe_gz_bytes):
    """Returns (vocab dict token->id, list of merge pairs)."""
    lines = gzip.decompress(bpe_gz_bytes).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]  # 48,894 merges after the header
    assert len(merges) == 48894
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    return {t: i for i, t in enumerate(vocab)}, merges


def write(bpe_gz_bytes, vocab_path, merges_path):
    vocab, merges = build(bpe_gz_bytes)
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
