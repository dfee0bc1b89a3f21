"""Peak RSS of ``prp rerank`` against ``--in-flight``, on synthetic DL19-shaped data.

    python bench/memory.py --queries 2000 --in-flight 16,64,256,1024,all --out bench/results/memory-2000.json
    python bench/memory.py --queries 10000 --in-flight default --out bench/results/memory-10000.json

Writes a candidates JSONL of ``--queries`` queries x ``--depth`` candidates shaped like TREC DL
2019's BM25 top-100 (passages of 383 characters on average, doc ids of 7, queries of 33; grades
0/1/2/3 in DL19's proportions over those candidates: 68/12/13/7 %) and its qrels, then runs
``prp rerank --judge perfect`` once per ``--in-flight`` value (``default``: the option left
out), each in its own process, and reads that process's peak RSS (``ru_maxrss`` from
``wait4``), its comparisons and comparisons per second of ranking (the summary's
``seconds``: loading the input excluded). A first run only loads the input
(``prp.data.load_candidates``): the RSS of Python, prp and the input alone. The judge is the
perfect simulated one (no LLM): what is measured is the engine, its cache and the input, not a
model. ``--without-freeze`` adds, for each, the same run with Python's collector settings (no
``gc.freeze``, default thresholds: what :mod:`prp.cli.collector` saves).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_FREEZE = ("import gc, sys; gc.freeze = gc.unfreeze = gc.set_threshold = lambda *a: None\n"
             "from prp.cli import main; sys.exit(main(sys.argv[1:]))")
GRADES, WEIGHTS = (0, 1, 2, 3), (0.681, 0.122, 0.132, 0.065)  # DL19 BM25 top-100, judged grades


def write_data(directory: Path, queries: int, depth: int, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    pool = " ".join(rng.choice(words) for _ in range(200_000))
    cands, qrels = directory / "candidates.jsonl", directory / "qrels.txt"
    with cands.open("w") as out, qrels.open("w") as judged:
        for q in range(queries):
            qid = f"{1_000_000 + q}"
            start = rng.randrange(len(pool) - 40)
            hits = []
            for rank in range(depth):
                docid = f"{10**6 + q * depth + rank}"  # unique, 7 characters or more
                length = max(20, int(rng.gauss(383, 150)))
                at = rng.randrange(len(pool) - length)
                hits.append({"docid": docid, "text": pool[at: at + length], "score": 30.0 - rank * 0.1})
                grade = rng.choices(GRADES, WEIGHTS)[0]
                if grade:
                    judged.write(f"{qid} 0 {docid} {grade}\n")
            out.write(json.dumps({"qid": qid, "query": pool[start: start + 33], "candidates": hits}) + "\n")
    return cands, qrels


def run(command: list[str]) -> dict:
    """Run ``command`` (after ``python``): its exit code, its own peak RSS (MB) and CPU seconds
    (from wait4: robust to other processes sharing the cores), wall seconds and output."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, *command], stdout=out, stderr=err,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    return {"code": proc.returncode, "peak_rss_mb": usage.ru_maxrss / 1024,
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "seconds": round(time.perf_counter() - started, 1), "stdout": stdout, "stderr": stderr[-2000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--in-flight", default="16,64,256,1024,all",
                        help="comma-separated values of --in-flight; 'default' leaves the option out")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--without-freeze", action="store_true",
                        help="also run each without gc.freeze (the collector scanning the loaded input)")
    opts = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        cands, qrels = write_data(tmp_dir, opts.queries, opts.depth)
        size = cands.stat().st_size / 1e6
        print(f"{opts.queries} queries x {opts.depth} candidates: {size:.0f} MB of JSONL", flush=True)
        base = ["rerank", "--input", str(cands), "--judge", "perfect", "--qrels", str(qrels), "--quiet",
                "--format", "json"]
        load = ("import json; from prp.data import load_candidates; "
                f"print(json.dumps({{'queries': len(load_candidates({str(cands)!r}))}}))")
        runs = [("input loaded, no judging", ["-c", load])]
        for value in opts.in_flight.split(","):
            flight = [] if value == "default" else ["--in-flight", value]
            command = [*base, *flight, "--output", str(tmp_dir / "out.run")]
            runs.append((f"--in-flight {value}", ["-m", "prp.cli", *command]))
            if opts.without_freeze:  # the same run with the collector scanning the loaded input
                runs.append((f"--in-flight {value}, no gc.freeze", ["-c", NO_FREEZE, *command]))
        print(f"{'run':>36} {'peak RSS MB':>11} {'seconds':>8} {'CPU s':>6} {'inferences':>10} "
              f"{'prompts':>9} {'comparisons':>11} {'cmp/s':>8}")
        for label, args in runs:
            result = run(args)
            if result["code"] != 0:
                raise SystemExit(f"{label} failed ({result['code']}): {result['stderr']}")
            summary = json.loads(result["stdout"])
            cost = summary.get("cost", {})  # none for the input-only run
            row = {"run": label, "peak_rss_mb": round(result["peak_rss_mb"], 1), "seconds": result["seconds"],
                   "cpu_seconds": result["cpu_seconds"],
                   "inferences": round(cost.get("inferences", 0)), "prompts": round(cost.get("prompts", 0)),
                   "in_flight": summary.get("settings", {}).get("in_flight"),
                   "comparisons": cost.get("comparisons", 0),
                   "rank_seconds": round(summary.get("seconds", 0), 2)}
            row["comparisons_per_second"] = (round(row["comparisons"] / row["rank_seconds"])
                                             if row["comparisons"] else 0)
            rows.append(row)
            print(f"{label:>36} {row['peak_rss_mb']:>11.1f} {row['seconds']:>8.1f} "
                  f"{row['cpu_seconds']:>6.1f} {row['inferences']:>10} {row['prompts']:>9} "
                  f"{row['comparisons']:>11} {row['comparisons_per_second']:>8}", flush=True)
    if opts.out:
        opts.out.write_text(json.dumps({"command": " ".join(["python", "bench/memory.py", *sys.argv[1:]]),
                                        "queries": opts.queries, "depth": opts.depth, "judge": "perfect",
                                        "data": "synthetic, DL19-shaped", "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
