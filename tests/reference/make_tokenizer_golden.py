#!/usr/bin/env python3
"""Makes tests/data/tokenizer/golden.json: CLIP token ids from transformers' slow CLIPTokenizer
(with ftfy installed, so its cleanup is ftfy.fix_text + whitespace_clean + lower) over a seeded,
diverse prompt set. The from_vocab_merges test reads tests/data/tiny_sd/diffusers/tokenizer/ (made by
make_goldens.py with the same vocabulary derivation).

The vocabulary is derived from weights/bpe_simple_vocab_16e6.txt.gz exactly as OpenAI's
SimpleTokenizer derives it. Run with the pinned venv:
  /tmp/refenv/bin/python tests/reference/make_tokenizer_golden.py
"""
import json
import os
import random
import sys
import tempfile

import ftfy  # noqa: F401  (must be importable: CLIPTokenizer only runs fix_text when it is)
import regex
import transformers
from transformers import CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_vocab  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BPE_GZ = os.path.join(ROOT, "weights", "bpe_simple_vocab_16e6.txt.gz")
OUT_DIR = os.path.join(ROOT, "tests", "data", "tokenizer")


def write_vocab_merges(directory):
    # The vocabulary derivation shared with make_goldens.py (OpenAI's SimpleTokenizer order).
    with open(BPE_GZ, "rb") as f:
        clip_vocab.write(f.read(), os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt"))


HAND = [
    "",
    " ",
    "a photograph of an astronaut riding a horse",
    "A Photograph Of An ASTRONAUT Riding A Horse",
    "a cat, a dog; a bird: a fish! really? yes... (maybe) [no] {ok} <tag> 'quoted' \"double\"",
    "it's a dog's life, isn't it? they're here, we've gone, I'm sure, you'll see, he'd know",
    "IT'S THEY'RE WE'VE I'M YOU'LL HE'D DON'T",
    "rock 'n' roll, the '90s, o'clock, y'all, ma'am, 'tis, 'twas, ol' man",
    "don''t ''s 's 'S 't 're 've 'm 'll 'd 'x '",
    "it\u2019s \u201ccurly\u201d \u2018single\u2019 \u201equotes\u201f \u201bx \u02bcy",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade \u00fcber Stra\u00dfe \u00e5ngstr\u00f6m se\u00f1or \u0141\u00f3d\u017a",
    "cafe\u0301 nai\u0308ve (combining accents, NFC)",
    "\ufb01sh \ufb02ower o\ufb03ce wa\ufb04e \ufb00 \ufb05 \ufb06 \u0132 \u0133 \u01c4 \u01c9",
    "\uff21\uff22\uff23\uff11\uff12\uff13 \uff48\uff45\uff4c\uff4c\uff4f\uff01 \u3000wide\u3000space \uff76\uff80\uff76\uff85",
    "\u5c71\u6c34\u753b \u4e00\u53ea\u732b \u6771\u4eac\u30bf\u30ef\u30fc \u3072\u3089\u304c\u306a \ud55c\uad6d\uc5b4 \u4e2d\u6587\u5b57",
    "emoji \U0001F600\U0001F431\U0001F680 \u2764\ufe0f \U0001F44D\U0001F3FD \U0001F469\u200d\U0001F4BB \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 \U0001F1EF\U0001F1F5 \U0001F3F4\U000E0067\U000E0062\U000E0077\U000E006C\U000E0073\U000E007F",
    "fish &amp; chips &lt;b&gt; &#39;quoted&#39; &quot;dq&quot; &amp;amp; &eacute;t&eacute; &EACUTE; &hellip; &nbsp;x",
    "&#x41;&#66;&#X43; &#128512; &#0; &#x110000; &#150; &#12a; &notanentity; &amp &copy; &COPY; &SZLIG;",
    "html with a literal < sign: &amp; stays &lt; escaped",
    "line one &amp;\nline two < &amp;\nline three &amp;",
    "tabs\tand\t\tspaces   and\nnewlines\r\nand\rcr \u00a0nbsp\u00a0\u00a0 \u3000ideographic \u2003em \u2028ls\u2029ps \u0085nel",
    "   leading and trailing whitespace   \t\n",
    "control\x00chars\x01\x07\x08\x0b\x0c\x0e\x1b\x1f\x7f here \ufeffbom \ufffcobj \u206adep",
    "c1 controls \x80\x81\x85\x8d\x91\x92\x93\x94\x9d\x9f end",
    "\x1b[36;44mcolored terminal text\x1b[0m",
    "numbers 0 1 12 123 2024 3.14159 1,000,000 \u0661\u0662\u0663 \u2167 \u00bd \u00b2 \u2460",
    "mojibake: caf\u00c3\u00a9 \u00e2\u0080\u009c \u00c3\u00a9t\u00c3\u00a9 na\u00c3\u00afve",
    "\u00e2\u0153\u201d No problems",
    "voil\u00c3\u00a0 le travail",
    "<|startoftext|>a cat<|endoftext|> dog <|ENDOFTEXT|> <|endoftext|x",
    "!<|endoftext|>! a<|startoftext|>b",
    "it'\u017f fine \u017fun",
    "\u0130stanbul \u0130I \u03a3\u039f\u03a6\u039f\u03a3 \u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 \u0391\u03a3 \u03c3",
    "\u1e9e \u00df \u0149 \u01f0 \u1f88 \u212a\u212b \u2126",
    "\u0345 iota subscript alone, a\u0345b",
    "symbols ~!@#$%^&*()_+-=[]{}|\\;:,./<>? \u00a9\u00ae\u2122 \u20ac\u00a3\u00a5 \u00b0C \u00b1 \u00d7 \u00f7 \u2192 \u2605 \u266b",
    "masterpiece, best quality, (ultra-detailed:1.2), [[blurry]], {hdr}, 8k, octane render, trending on artstation",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    "zero\u200bwidth\u200cnon\u200djoiner \u200e\u200f marks \u2060wj",
    "surrogate-free supplementary \U00010348 \U0001D400\U0001D401 \U00020000",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" + "!" * 100,
]



def mojibake_prompts():
    """Text mis-decoded in each codec ftfy's fix_encoding knows, and its special cases."""
    out = []
    samples = ["caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", "\u201cquoted\u201d \u2014 dash\u2026",
               "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5",
               "za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105", "\u00e7a\u011f\u0131\u015f \u0130stanbul",
               "\u732b\u306e\u7d75 \u2713", "emoji \U0001F600 ok"]
    for enc in ["latin-1", "windows-1252", "windows-1251", "windows-1250", "windows-1253", "windows-1254",
                "windows-1257", "iso-8859-2", "mac_roman", "cp437"]:
        for text in samples:
            raw = text.encode("utf-8")
            try:
                out.append(raw.decode(enc))
            except UnicodeDecodeError:
                out.append(raw.decode(enc, errors="replace"))
    cesu = "\U0001F600".encode("utf-16-be")
    hi, lo = (cesu[0] << 8) | cesu[1], (cesu[2] << 8) | cesu[3]
    cesu8 = bytes([0xED, 0xA0 | ((hi >> 6) & 0x0F), 0x80 | (hi & 0x3F), 0xED, 0xB0 | ((lo >> 6) & 0x0F), 0x80 | (lo & 0x3F)])
    out += [
        ("smile " + "\u00e9".encode("utf-8").decode("latin-1") + " ").encode("latin-1").decode("latin-1")
        + cesu8.decode("latin-1") + " end",  # CESU-8 surrogate pair (utf-8-variants)
        "caf\u00c3\u00a9 and Java null \u00c0\u0080 here",
        "caf\u00c3\u00a9 \u00c0\n",  # a final C0 before a newline
        "voil\u00c3 le travail",  # restore_byte_a0 (A0 turned into a space)
        "\u00e2\u20ac\u0153 like this \u00e2\u20ac\ufffd",  # replace_lossy_sequences
        "\u732b caf\u00c3\u00a9 \u00c3\u00a9t\u00c3\u00a9 \u2603",  # decode_inconsistent_utf8
        "\u00ce\u00b1\u00cf\u0081 \u2713 \u0432\u0402\u045a",
        "l\u00c3\u00a0 \u00c3 s \u00c3 quele",
        "\u00c2\u00a0\u00c2\u00a0 double nbsp mojibake",
        "\u00c3\u0192\u00c2\u00a9 double mojibake",
        "\u00aa\u03a3 \U0001F170\u03a3 final sigma after cased symbols",
    ]
    return out


WORDS = ("a an the of in on with by at from portrait landscape photo painting cat dog horse astronaut city "
         "forest mountain river ocean sunset sunrise night cyberpunk steampunk fantasy castle dragon knight "
         "robot girl boy woman man old young beautiful detailed intricate highly realistic cinematic lighting "
         "volumetric fog dramatic soft golden hour studio 4k 8k hdr octane unreal engine artstation greg "
         "rutkowski alphonse mucha by trending masterpiece quality sharp focus bokeh depth field lens 35mm "
         "watercolor oil canvas sketch pencil charcoal ink anime manga style colorful vibrant muted pastel").split()
PIECES = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'x", "\u2019s", "\u2019t", ",", ".", "!", "?",
          ";", ":", "-", "--", "...", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "|", "#", "@", "%",
          "&", "*", "+", "=", "~", "^", "_", "$", "\"", "'", "\u201c", "\u201d", "\u2018", "\u2014", "\u2013",
          "\u2026", "&amp;", "&lt;", "&gt;", "&#39;", "&quot;", "&amp;amp;", "&nbsp;", "&eacute;",
          "0", "1", "42", "1999", "3.5", "10,000", "1st", "2nd", "x2", "v1.5",
          "caf\u00e9", "\u00c9cole", "\u00f1and\u00fa", "\u00d8re", "\u0105\u0107\u0119", "\u00e6\u00f8\u00e5", "\u0153uvre",
          "\ufb01", "\ufb02", "\ufb03", "\uff21\uff22\uff23", "\uff11\uff12\uff13", "\uff01", "\uff08\uff09",
          "\u732b", "\u5c71", "\u6c34\u58a8", "\u3042", "\u30ab\u30bf", "\ud55c", "\U0001F600", "\U0001F431",
          "\U0001F44D\U0001F3FB", "\U0001F44B\U0001F3FF", "\U0001F9D1\u200d\U0001F680", "\u2764\ufe0f",
          "\U0001F3F3\ufe0f\u200d\U0001F308", "\U0001F1FA\U0001F1F8", "\u00a0", "\u3000", "\t", "\n", "  ",
          "\u2003", "\x07", "\x00", "\x7f", "\u200b", "\ufeff", "\u00e9", "e\u0301", "\u0391\u03b8\u03ae\u03bd\u03b1",
          "\u041c\u043e\u0441\u043a\u0432\u0430", "\u00b2", "\u00bd", "\u2460", "\u2167", "\u00b0", "\u00a9",
          "\u2122", "\u20ac", "\u00bf", "\u00a1"]
SEPARATORS = [" ", " ", " ", " ", "", ", ", "  ", "\t", "\n", "\u00a0"]


def random_prompts(rng, count):
    prompts = []
    for i in range(count):
        kind = i % 5
        n = rng.randint(1, 40) if kind < 4 else rng.randint(150, 220)
        parts = []
        for _ in range(n):
            r = rng.random()
            if kind == 0:  # plain English words
                tok = rng.choice(WORDS)
            elif kind == 1:  # words with punctuation, digits and apostrophes glued on
                tok = rng.choice(WORDS) + (rng.choice(PIECES) if r < 0.5 else "")
            elif kind == 2:  # anything from the special pieces
                tok = rng.choice(PIECES) if r < 0.7 else rng.choice(WORDS)
            elif kind == 3:  # random case and random code points
                w = rng.choice(WORDS)
                tok = "".join(c.upper() if rng.random() < 0.3 else c for c in w)
                if r < 0.2:
                    tok += chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x17f), rng.randint(0x370, 0x3ff),
                                           rng.randint(0x400, 0x4ff), rng.randint(0x4e00, 0x4fff),
                                           rng.randint(0xff01, 0xff5e), rng.randint(0x1f300, 0x1f64f)]))
            else:  # long prompts (150-220 words), mostly words
                tok = rng.choice(WORDS) if r < 0.85 else rng.choice(PIECES)
            parts.append(tok)
            parts.append(rng.choice(SEPARATORS))
        prompts.append("".join(parts))
    return prompts


def main():
    rng = random.Random(20261125)
    prompts = HAND + mojibake_prompts() + random_prompts(rng, 300)
    with tempfile.TemporaryDirectory() as tmp:
        write_vocab_merges(tmp)
        tok = CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"))
        assert tok.fix_text is not None, "ftfy is not active in CLIPTokenizer"
        os.makedirs(OUT_DIR, exist_ok=True)
    # The from_vocab_merges test reads tests/data/tiny_sd/diffusers/tokenizer/, which
    # make_goldens.py writes with the same derivation (no second copy is kept here).
    cases = []
    for text in prompts:
        ids = tok(text, add_special_tokens=False).input_ids
        padded = tok(text, padding="max_length", max_length=77, truncation=True).input_ids
        assert len(padded) == 77
        cases.append({"text": text, "ids": ids, "padded": padded})
    out = {
        "generator": {"transformers": transformers.__version__, "ftfy": ftfy.__version__,
                      "regex": regex.__version__, "python": sys.version.split()[0]},
        "cleanup": "ftfy.fix_text + whitespace_clean + lower (transformers CLIPTokenizer)",
        "cases": cases,
    }
    with open(os.path.join(OUT_DIR, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases written to {OUT_DIR}/golden.json")


if __name__ == "__main__":
    main()
