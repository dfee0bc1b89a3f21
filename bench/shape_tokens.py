"""Input and output tokens of pair, set and list prompts on DL19: a real tokenizer against the estimate.

    python bench/shape_tokens.py --data ../shared/data/trec-dl-2019 > bench/results/shape-tokens.txt

For every query of the data directory (BM25 top 100), the prompts a ranker would show with the
default budgets (passages 128 tokens, query 64): pairs of neighbours (1,2), (3,4), ...; sets of
k=4 neighbours; lists of w=20 and w=10 neighbours. Each is counted by Qwen2.5's tokenizer (the
packaged qwen2.5-coder-0.5b vocabulary, the same as the 1.5B judge's; plain and through its
chat template) and by the tokenizer-free estimate of :func:`prp.shape_text.input_tokens`. Means
per prompt; "ratio" is estimate / tokenizer (plain). Output tokens of a list: the tokenizer's
count of ``[1] > ... > [w]`` against :func:`prp.shape_text.output_tokens`' estimate.
"""

from __future__ import annotations

import argparse
from statistics import mean

from prp.data import load_dataset
from prp.oracles.tokenizers import local_tokenizer
from prp.shape_text import input_tokens, output_tokens

SHAPES = (("pair", 2), ("set", 4), ("set", 10), ("list", 10), ("list", 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/trec-dl-2019")
    parser.add_argument("--tokenizer", default="qwen2.5-coder-0.5b")
    args = parser.parse_args()
    requests, _ = load_dataset(args.data, depth=100)
    tok = local_tokenizer(args.tokenizer)
    print(f"# {len(requests)} queries of {args.data}, tokenizer {args.tokenizer}")
    print(f"{'shape':>6} {'n':>3} {'prompts':>7} {'tokenizer':>9} {'chat':>7} {'estimate':>8} {'ratio':>6}"
          f" {'out(tok)':>8} {'out(est)':>8}")
    for shape, n in SHAPES:
        real, chat, guess = [], [], []
        for request in requests:
            docs = list(request.docs)
            for start in range(0, len(docs) - n + 1, n):
                window = docs[start: start + n]
                real.append(input_tokens(shape, request.query, window, tokenizer=tok))
                chat.append(input_tokens(shape, request.query, window, tokenizer=tok, chat=tok.chat))
                guess.append(input_tokens(shape, request.query, window))
        out_real = 1 if shape != "list" else output_tokens(shape, n, tokenizer=tok)
        print(f"{shape:>6} {n:>3} {len(real):>7} {mean(real):>9.1f} {mean(chat):>7.1f} {mean(guess):>8.1f} "
              f"{mean(guess) / mean(real):>6.3f} {out_real:>8} {output_tokens(shape, n):>8}")


if __name__ == "__main__":
    main()
