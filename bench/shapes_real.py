"""k-wise rankers with a real judge against the pairwise rankers, at equal input tokens.

    python bench/shapes_real.py --model qwen2.5-coder-1.5b \\
        --replay bench/results/replay-qwen1.5b-dl19-d20.json.gz \\
        --answers bench/results/shapes-real-qwen1.5b-answers.jsonl > bench/results/shapes-real-qwen1.5b.txt

On the replay set's queries (its depth; texts and qrels from ``--data``):

* every k-wise ranker of ``--kwise`` runs through the engine with the real judge, llama.cpp in
  process (its chat template, greedy): sets answered by label logits in one forward pass each,
  lists by generation. Reported per ranker: nDCG@10, prompts, input and output tokens per query
  (the judge's own tokenizer), unparsed and repaired answers per shape, seconds. Every set and
  list answer is written to ``--answers`` (JSONL: qid, shape, the ids in the order shown, the
  answer in slots, probs, parsed, repaired) for ``prp calibrate-oracle --answers``;
* every pairwise ranker of ``--pairwise`` runs over the same judge's recorded pair answers (the
  replay set: all ordered pairs, judged by the same model and template), first without a budget,
  then with the budget in prompts that spends the input tokens of each k-wise ranker (its input
  tokens per query over the mean input tokens of a pair prompt, counted by the same tokenizer on
  the same candidates, orders=both: 2 prompts a comparison).

Slow: the k-wise runs take about 20 minutes on 2 CPU cores with the 1.5B judge (4 queries).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from prp import Reranker
from prp.data import load_dataset
from prp.engine import SyncEngine
from prp.evaluate import mean_measure
from prp.oracles.llamacpp import LlamaCppBackend
from prp.oracles.replay import ReplayOracle, read_replay, with_shaped, write_replay
from prp.types import Prompt, ShapedPrompt


def pair_prompt_tokens(judge: LlamaCppBackend, requests) -> float:
    """The mean input tokens of a pair prompt over every ordered pair of the candidates."""
    counts = []
    for r in requests:
        for i, a in enumerate(r.docs):
            for j, b in enumerate(r.docs):
                if i != j:
                    p = Prompt(r.qid, r.query, r.doc_ids[i], a, r.doc_ids[j], b)
                    counts.append(len(judge.llm.tokenize(judge.render(p).encode("utf-8"), add_bos=True,
                                                         special=True)))
    return statistics.fmean(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/trec-dl-2019")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--replay", default="bench/results/replay-qwen1.5b-dl19-d20.json.gz")
    parser.add_argument("--kwise", default="setwise:k=4;listwise:window=10,step=5",
                        help="k-wise rankers, separated by ';'")
    parser.add_argument("--pairwise", default="quicksort;heapsort;tournament;active",
                        help="pairwise rankers, separated by ';'")
    parser.add_argument("--answers", type=Path, help="write every set and list answer here (JSONL)")
    parser.add_argument("--replay-out", type=Path,
                        help="write the replay set with the set and list answers added")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    replay = read_replay(args.replay)
    qids = [q["qid"] for q in replay["queries"]]
    requests, qrels = load_dataset(args.data, depth=replay["depth"])
    by_qid = {r.qid: r for r in requests}
    requests = [by_qid[q] for q in qids]
    for r, q in zip(requests, replay["queries"], strict=True):
        if list(r.doc_ids) != q["doc_ids"]:
            raise SystemExit(f"the replay set's candidates differ from {args.data} for {r.qid}")
    judge = LlamaCppBackend(args.model, n_ctx=4096, n_threads=args.threads)
    print(f"# {' '.join(sys.argv)}")
    print(f"# judge {judge.name}; {len(requests)} queries of {args.data} (the replay set's), "
          f"depth {replay['depth']}, k={args.k}")
    bm25 = mean_measure("nDCG@10", {r.qid: list(r.doc_ids) for r in requests}, qrels)
    per_pair = pair_prompt_tokens(judge, requests)
    print(f"# BM25 nDCG@10 {bm25:.4f}; a pair prompt: {per_pair:.1f} input tokens "
          "(mean over every ordered pair)")
    rows = []
    out = args.answers.open("w") if args.answers else None
    recorded: list[dict] = []

    def record(inference) -> None:
        for prompt, answer in zip(inference.prompts, inference.result.judgments, strict=True):
            if type(prompt) is ShapedPrompt:
                recorded.append({"qid": prompt.qid, "shape": prompt.shape, "ids": list(prompt.ids),
                                 "order": answer.order, "probs": answer.probs, "parsed": answer.parsed,
                                 "repaired": answer.repaired})
                if out is not None:
                    out.write(json.dumps(recorded[-1]) + "\n")
                    out.flush()

    kwise_tokens = {}
    for sorter in filter(None, args.kwise.split(";")):
        started = time.perf_counter()
        reranker = Reranker(judge, sorter=sorter, k=args.k, batch_size=8)
        with SyncEngine(reranker, on_inference=record) as engine:
            results = engine.rank_many(requests)
        seconds = time.perf_counter() - started
        n = len(results)
        cost = [r.cost for r in results]
        shapes = Counter()
        for c in cost:
            shapes.update(c.prompts_by_shape)
        tokens = sum(c.input_tokens for c in cost) / n
        kwise_tokens[sorter] = tokens
        rows.append((sorter, "real", mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels),
                     sum(c.prompts for c in cost) / n, tokens, sum(c.output_tokens for c in cost) / n,
                     sum(c.unparsed for c in cost), sum(c.repaired for c in cost), dict(shapes), seconds / n))
        print(f"# done {sorter}: {seconds:.0f} s", file=sys.stderr)
    if out is not None:
        out.close()
    if args.replay_out:
        write_replay(args.replay_out, with_shaped(replay, recorded))

    for sorter in filter(None, args.pairwise.split(";")):
        budgets = [None, *sorted({max(2, int(t / per_pair)) for t in kwise_tokens.values()})]
        for budget in budgets:
            rr = Reranker(ReplayOracle(args.replay), sorter=sorter, k=args.k, batch_size=8, orders="both",
                          budget=budget)
            results = rr.rank_many(requests)
            cost = [r.cost for r in results]
            n = len(results)
            prompts = sum(c.prompts for c in cost) / n
            label = "replay" if budget is None else f"replay, budget {budget} prompts"
            rows.append((sorter, label, mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels),
                         prompts, prompts * per_pair, prompts, sum(c.unparsed for c in cost), 0,
                         {"pair": sum(c.prompts for c in cost)}, None))

    print(f"{'ranker':28} {'judge':30} {'nDCG@10':>8} {'prompts/q':>9} {'input tok/q':>11} "
          f"{'output tok/q':>12} {'unparsed':>8} {'repaired':>8} {'s/q':>6}")
    for sorter, how, ndcg, prompts, tokens, output, unparsed, repaired, _shapes, seconds in rows:
        secs = "" if seconds is None else f"{seconds:.0f}"
        print(f"{sorter:28} {how:30} {ndcg:8.4f} {prompts:9.1f} {tokens:11.0f} {output:12.1f} {unparsed:8d} "
              f"{repaired:8d} {secs:>6}")


if __name__ == "__main__":
    main()
