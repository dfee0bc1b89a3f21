"""Write a synthetic data directory in the TREC DL 2019 layout, to run any evaluation command on a
second collection unchanged.

    python bench/make_dl_layout.py /tmp/synthetic-dl --queries 50 --depth 100 --seed 1
    python bench/shapes.py /tmp/synthetic-dl > bench/results/shapes-synthetic.txt

The directory gets ``bm25-top100.json`` (``[{"query", "hits": [{"content", "qid", "docid",
"rank", "score"}]}]``), ``qrels.txt`` (graded, TREC format), ``topics.tsv`` and ``bm25.run``.
Queries and passages are words drawn from a fixed vocabulary (passages of 40 to 90 words, about
DL19's 383 characters); every candidate is judged, with grades 0/1/2/3 in DL19's proportions over
its candidates (68/12/13/7 %). The first-stage score is the grade plus Gaussian noise (sd 1.5),
so the first stage is better than chance and far from perfect, as BM25 is. Nothing is read from
DL19: only its layout is copied.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

WORDS = ("ocean tide coral reef salt wave shore storm river delta forest canopy root leaf moss stone granite "
         "quartz volcano lava ash glacier ice snow summit valley meadow prairie desert dune cactus orbit "
         "planet comet star galaxy engine piston valve gear lever pulley bridge tunnel harbor market price "
         "bread flour yeast oven honey bee hive flower seed harvest rain cloud thunder lightning").split()
GRADES, WEIGHTS = (0, 1, 2, 3), (68, 12, 13, 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    entries, qrels, topics, run = [], [], [], []
    for q in range(args.queries):
        qid = str(900000 + q)
        query = " ".join(rng.sample(WORDS, rng.randint(3, 7)))
        docs = []
        for d in range(args.depth):
            grade = rng.choices(GRADES, WEIGHTS)[0]
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90)))
            docs.append((grade + rng.gauss(0, 1.5), f"{qid}{d:03d}", text, grade))
        docs.sort(key=lambda doc: -doc[0])
        hits = [{"content": text, "qid": int(qid), "docid": docid, "rank": rank, "score": round(score, 4)}
                for rank, (score, docid, text, _) in enumerate(docs, start=1)]
        entries.append({"query": query, "hits": hits})
        qrels += [f"{qid} Q0 {docid} {grade}" for _, docid, _, grade in docs]
        topics.append(f"{qid}\t{query}")
        run += [f"{qid} Q0 {h['docid']} {h['rank']} {h['score']:.6f} synthetic" for h in hits]
    (args.out / "bm25-top100.json").write_text(json.dumps(entries, indent=1) + "\n")
    (args.out / "qrels.txt").write_text("\n".join(qrels) + "\n")
    (args.out / "topics.tsv").write_text("\n".join(topics) + "\n")
    (args.out / "bm25.run").write_text("\n".join(run) + "\n")
    print(f"{args.out}: {args.queries} queries x {args.depth} candidates")


if __name__ == "__main__":
    main()
