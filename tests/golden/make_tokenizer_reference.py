#!/usr/bin/env python3
"""Writes the reference files of tests/data/bpe_tokenizer_golden_test.cc with HF `tokenizers`.

Trains two small byte-level BPE tokenizers (vocab 1000) on tests/golden/tokenizer_corpus.txt:
  gpt2_style:   pre_tokenizer ByteLevel(use_regex=True) (GPT-2's split pattern), special token
                <|endoftext|>, post_processor ByteLevel; merges saved as "a b" strings.
  llama3_style: pre_tokenizer Sequence[Split(Llama-3's regex, Isolated), ByteLevel(use_regex=
                False)], special tokens <|begin_of_text|> <|end_of_text|>, post_processor
                Sequence[ByteLevel, TemplateProcessing("<|begin_of_text|> $A")], model
                ignore_merges true (as Llama 3 ships); merges saved as [a, b] pairs.
Both have the ByteLevel decoder. For each it writes <name>.json (the tokenizer) and
<name>_reference.json: {"tokenizer", "tokenizers_version", "special_tokens", "cases": [{"text",
"ids" (encode without the post-processor's template), "decoded" (decode of ids, special tokens
kept), "ids_with_template" (encode with it)}]} for every corpus line (with its newline), the whole
corpus, held-out strings and strings containing the special tokens.

Needs `tokenizers` (the GPU machine has it; this one does not):
    python3 tests/golden/make_tokenizer_reference.py --out DIR [--corpus PATH]
"""

import argparse
import json
import os
import sys

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 1000
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Strings the tokenizers were not trained on: whitespace and Unicode corner cases.
HELD_OUT = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    " \n ",
    "\t\n\t",
    "a\r\nb\r\n",
    "line one\r\n\r\nline three",
    "trailing   ",
    "  leading",
    "x  \n  y",
    "word\u00a0nbsp and\u3000ideographic space",
    "zero\u200bwidth and e\u0301 combining",
    "I'Ll YOU'RE she'S it'D we'VE they'M",
    "'s at the start, and 'll too",
    "rock'n'roll o'clock y'all",
    "123456789 1234 12 1 3.14159 -0.5 1e-9 10,000.00",
    "Roman Ⅻ, superscript ² ³, circled ① ②, Arabic-Indic ٣٤٥, fullwidth ７８９",
    "Unseen words: quixotic zephyr juxtaposition floccinaucinihilipilification",
    "CamelCaseIdentifierWithNumbers123AndMore",
    "snake_case_identifier = another_one + 42",
    "!!!???...,,,;;;:::",
    "((((nested)))) [[[[x]]]] {{{{y}}}}",
    "emoji run 😀😀😀😀 and flags 🇫🇷🇯🇵 and skin 👋🏿",
    "中文没有空格分词很难。日本語とEnglishが混ざる。",
    "Ünïcödé àçcéñts éverywhere: ÀÉÎÕÜ àéîõü",
    "Tab\tinside\t\twords\t\t\tand trailing tab\t",
    "a" * 50,
    "ab" * 40,
    " " * 20 + "x",
    "The quick brown fox jumps over the lazy dog. The quick brown fox!",
    "def f(x):\n\treturn x ** 2  # square\n",
    "мир, 世界, κόσμος, world",
    # Unicode whitespace and format characters, where regex engines could disagree on \s.
    "a\u0085b c\u0085\u0085 d",
    "mongolian\u180evowel \u180e x",
    "line\u2028sep\u2029para",
    "file\u001cgroup\u001frecord",
    "\ufeffbom and zero\u200bwidth\u200d joiner",
    "thin\u2009space\u202fnarrow\u205fmath\u1680ogham",
    "\n\n\n\n\n  x",
    "   \n\n  ",
    "\r\r\n\n\r",
    "1234567 12345678901 ½¾ 3.14159",
    "it\u2019s they\u2019re IT'S it'\u017f",
    "abc" * 400,
    " the" * 300,
]


def special_cases(specials):
    s = specials[0]
    cases = [
        s,
        f"Hello{s}world",
        f"{s}{s}",
        f"a {s} b",
        f" {s}\n",
        f"text{s}\n{s}more text",
        s[:-1],  # a partial special token is ordinary text
        s[1:],
        f"<{s}>",
        f"{s[:5]} {s[5:]}",
    ]
    if len(specials) > 1:
        t = specials[1]
        cases += [f"{s}prompt{t}", f"{t}{s}", f"x{t}y{s}z"]
    return cases


def train(corpus_path, style):
    if style == "gpt2_style":
        specials = ["<|endoftext|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train([corpus_path], trainer)
    if style == "llama3_style":
        bos = tok.token_to_id(specials[0])
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{specials[0]} $A",
                                          pair=f"{specials[0]} $A {specials[0]} $B",
                                          special_tokens=[(specials[0], bos)]),
        ])
    return tok, specials


def rewrite(tok, style):
    """Saves merges in the style's format (and ignore_merges for Llama 3); reloads the JSON."""
    j = json.loads(tok.to_str())
    merges = j["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else list(m) for m in merges]
    assert all(len(p) == 2 for p in pairs), "a merge is not a pair"
    notes = []
    if style == "gpt2_style":
        j["model"]["merges"] = [f"{a} {b}" for a, b in pairs]
    else:
        j["model"]["merges"] = pairs
        j["model"]["ignore_merges"] = True
    text = json.dumps(j, ensure_ascii=False, indent=2)
    try:
        return Tokenizer.from_str(text), text, notes
    except Exception as e:  # an old tokenizers without ignore_merges
        notes.append(f"ignore_merges refused ({e}); saved without it")
        del j["model"]["ignore_merges"]
        text = json.dumps(j, ensure_ascii=False, indent=2)
        return Tokenizer.from_str(text), text, notes


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", default=os.path.join(here, "tokenizer_corpus.txt"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.corpus, encoding="utf-8", newline="") as f:
        corpus = f.read()
    lines = corpus.splitlines(keepends=True)
    print(f"tokenizers {tokenizers.__version__}, corpus {len(corpus.encode())} bytes, "
          f"{len(lines)} lines")
    for style in ("gpt2_style", "llama3_style"):
        trained, specials = train(args.corpus, style)
        tok, text, notes = rewrite(trained, style)
        with open(os.path.join(args.out, f"{style}.json"), "w", encoding="utf-8") as f:
            f.write(text)
        cases = []
        changed = 0
        texts = lines + [corpus] + HELD_OUT + special_cases(specials)
        for t in texts:
            ids = tok.encode(t, add_special_tokens=False).ids
            ref = trained.encode(t, add_special_tokens=False).ids
            if ids != ref and style == "gpt2_style":  # string merges must not change anything
                sys.exit(f"{style}: the rewritten tokenizer differs on {t!r}")
            changed += ids != ref
            decoded = tok.decode(ids, skip_special_tokens=False)
            if decoded != t:
                notes.append(f"decode does not round-trip {t!r}: {decoded!r}")
            cases.append({"text": t, "ids": ids, "decoded": decoded,
                          "ids_with_template": tok.encode(t).ids})
        if style == "llama3_style":
            notes.append(f"ignore_merges changed the ids of {changed} of {len(texts)} cases")
        ref = {"tokenizer": f"{style}.json", "tokenizers_version": tokenizers.__version__,
               "vocab_size": tok.get_vocab_size(with_added_tokens=True),
               "special_tokens": {s: tok.token_to_id(s) for s in specials},
               "notes": notes, "cases": cases}
        with open(os.path.join(args.out, f"{style}_reference.json"), "w", encoding="utf-8") as f:
            json.dump(ref, f, ensure_ascii=False, indent=1)
        n_ids = sum(len(c["ids"]) for c in cases)
        print(f"{style}: vocab {ref['vocab_size']}, {len(cases)} cases, {n_ids} ids, "
              f"notes {notes}")


if __name__ == "__main__":
    main()
