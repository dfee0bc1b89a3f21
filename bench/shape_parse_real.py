"""How a real small judge answers set and list prompts: parse failures, repairs, accuracy.

    python bench/shape_parse_real.py --model qwen2.5-coder-0.5b --queries 10 --depth 20 \\
        > bench/results/shape-parse-qwen0.5b.txt

For the first ``--queries`` queries of the data directory (BM25 order, top ``--depth``), a
packaged GGUF judge (llama.cpp in process, its chat template, greedy) is shown:

* every window of k=4 neighbours as a ``set`` prompt: read once by the label logits of the next
  token (:func:`prp.shape_text.set_from_scores`), once by generating up to 8 tokens
  (:func:`prp.shape_text.parse_set`);
* every window of w=10 neighbours as a ``list`` prompt, generated (room for twice the tokens of
  ``[1] > ... > [10]`` plus 8) and read by :func:`prp.shape_text.parse_list`.

Reported: parsed / repaired / unparsed answers per shape and way; for sets, how often the
winner has the window's best grade (against the share of windows a uniform pick would get
right); for lists, the share of ordered pairs with different grades the list puts right (0.5
is chance). Slow: about a minute per query on 2 CPU cores with the 0.5B model.
"""

from __future__ import annotations

import argparse
from collections import Counter

from prp.data import load_dataset
from prp.oracles.llamacpp import LlamaCppBackend
from prp.prompts import truncate
from prp.shape_text import (
    SET_LABELS,
    list_prompt,
    output_tokens,
    parse_list,
    parse_set,
    set_from_scores,
    set_prompt,
)

K, W = 4, 10


def windows(n: int, size: int) -> list[range]:
    return [range(start, start + size) for start in range(0, n - size + 1, size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/trec-dl-2019")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    requests, qrels = load_dataset(args.data, depth=args.depth)
    requests = requests[: args.queries]
    judge = LlamaCppBackend(args.model, n_ctx=4096, n_threads=args.threads)
    llm, tok = judge.llm, judge.tokenizer
    label_ids = [[t for t in {*tok.encode(label), *tok.encode(f" {label}")}] for label in SET_LABELS[:K]]
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    set_right = set_chance = gen_right = pairs_right = pairs_all = 0
    for request in requests:
        grades = [qrels.get(request.qid, {}).get(d, 0) for d in request.doc_ids]
        query = truncate(request.query, judge.query_tokens, tok)
        docs = [truncate(d, judge.passage_tokens, tok) for d in request.docs]
        for window in windows(len(docs), K):
            text = set_prompt(query, [docs[i] for i in window], chat=tok.chat)
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            logits = judge._next_logits(tokens)
            scores = {i: float(max(logits[t] for t in ids)) for i, ids in enumerate(label_ids) if ids}
            shown = [grades[i] for i in window]
            by_logits = set_from_scores(scores, K)
            counts[f"set logits {'parsed' if by_logits.parsed else 'unparsed'}"] += 1
            set_right += by_logits.parsed and shown[by_logits.value] == max(shown)
            set_chance += shown.count(max(shown)) / K
            said = llm.create_completion(text, max_tokens=8, temperature=0)["choices"][0]["text"]
            generated = parse_set("Passage" + said, K)  # the prompt ends with the prefix
            counts[f"set text {'parsed' if generated.parsed else 'unparsed'}"] += 1
            if not generated.parsed:
                reasons[f"set: {generated.reason}"] += 1
            gen_right += generated.parsed and shown[generated.value] == max(shown)
        for window in windows(len(docs), W):
            text = list_prompt(query, [docs[i] for i in window], chat=tok.chat)
            room = 2 * output_tokens("list", W, tokenizer=tok) + 8
            said = llm.create_completion(text, max_tokens=room, temperature=0)["choices"][0]["text"]
            answer = parse_list(said, W)
            state = "unparsed" if not answer.parsed else "repaired" if answer.repaired else "clean"
            counts[f"list {state}"] += 1
            if answer.parsed and answer.repaired:
                reasons[f"list: {answer.reason.split(' [')[0]}"] += 1
            if not answer.parsed:
                reasons[f"list: {answer.reason}"] += 1
                continue
            shown = [grades[i] for i in window]
            place = {p: r for r, p in enumerate(answer.value)}
            for a in range(W):
                for b in range(W):
                    if shown[a] > shown[b]:
                        pairs_all += 1
                        pairs_right += place[a] < place[b]
    sets = counts["set logits parsed"] + counts["set logits unparsed"]
    lists = counts["list clean"] + counts["list repaired"] + counts["list unparsed"]
    print(f"# {args.model}, {len(requests)} queries of {args.data}, depth {args.depth}: "
          f"{sets} sets of {K}, {lists} lists of {W} (chat template, greedy)")
    for key in sorted(counts):
        print(f"{key:>22}: {counts[key]}")
    print(f"set winner has the best grade: logits {set_right}/{sets}, text {gen_right}/{sets}, "
          f"a uniform pick {set_chance:.1f}/{sets}")
    if pairs_all:
        print(f"list pairs with different grades put right: {pairs_right}/{pairs_all} "
              f"({pairs_right / pairs_all:.3f}; chance 0.5)")
    for reason, n in reasons.most_common():
        print(f"  {n:>3} x {reason}")


if __name__ == "__main__":
    main()
