"""Write the committed DL19 rankings and counts that tests/test_golden_dl19.py compares against.

    python bench/golden_dl19.py [--data ../shared/data/trec-dl-2019] [--out tests/data/golden-dl19.json.gz]

Runs every case of the test's matrix (``CASES`` in tests/test_golden_dl19.py: every ranker on
every offline judge, with fixed seeds, B=8 and the in-memory cache unless a case says otherwise)
with this checkout's prp, sorters and cost packages, and writes for each case and query the
ranking, the cut flag and every ledger count (gzipped JSON), with the command, the commit, and
the SHA-256 of the DL19 files and replay sets read. Run it from a checkout whose ranking code is
the reference: it refuses one with uncommitted changes under prp/, sorters/ or cost/ unless
``--allow-dirty``. The file holds nothing that varies from run to run (no times, no date): two
runs on one commit write the same bytes. About 45 s on 2 cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]  # this checkout's prp, and the test's matrix

import test_golden_dl19 as golden  # noqa: E402

import prp  # noqa: E402

CODE = ("prp", "sorters", "cost")  # what the rankings and counts depend on


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def rounded(value: object) -> object:
    """``value`` with every float to 12 significant digits (the test's tolerance is 1e-9)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: rounded(v) for key, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "trec-dl-2019",
                        help="DL19 in the TREC DL layout (bm25-top100.json, qrels.txt)")
    parser.add_argument("--out", type=Path, default=golden.GOLDEN)
    parser.add_argument("--allow-dirty", action="store_true",
                        help="write even with uncommitted changes under prp/, sorters/, cost/")
    args = parser.parse_args()

    imported = Path(prp.__file__).resolve().parents[1]
    if imported != ROOT:
        sys.exit(f"prp is imported from {imported}, not from this checkout ({ROOT})")
    dirty = git("status", "--porcelain", "--", *CODE)
    if dirty and not args.allow_dirty:
        sys.exit(f"uncommitted changes in the ranking code (--allow-dirty to write anyway):\n{dirty}")
    if not all((args.data / name).is_file() for name in golden.DATA_FILES):
        sys.exit(f"no DL19 at {args.data} (needs {', '.join(golden.DATA_FILES)})")

    start = time.perf_counter()
    cases = {}
    for number, case in enumerate(golden.CASES, start=1):
        cases[case.key] = {"judge": case.judge, "ranker": case.ranker, "settings": dict(case.settings),
                           "depth": case.depth, "queries_ranked": case.queries, "slow": case.slow,
                           **rounded(golden.run_case(case, args.data, ROOT))}
        print(f"[{number}/{len(golden.CASES)}] {case.key}", file=sys.stderr, flush=True)
    out = {
        "about": "rankings and counts of tests/test_golden_dl19.py's cases: per case its queries' ids "
                 "and a column per field (top/rest: the ranking as first-stage positions, rest null when "
                 "in first-stage order; k; cut; ledger counts, floats to 12 digits); run: the call's ledger",
        "command": shlex.join(["python", "bench/golden_dl19.py", *sys.argv[1:]]),
        "commit": git("rev-parse", "HEAD"),
        "dirty": dirty.splitlines(),
        "base": golden.BASE,
        "fingerprints": golden.fingerprints(args.data, ROOT),
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=args.out.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(json.dumps(out, separators=(",", ":")).encode("utf-8"))
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    rankings = sum(c["queries_ranked"] for c in cases.values())
    print(f"{len(cases)} cases, {rankings} rankings in {time.perf_counter() - start:.0f} s: {args.out} "
          f"({args.out.stat().st_size:,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
