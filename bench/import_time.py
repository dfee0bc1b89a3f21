"""Wall time of ``import prp``, ``import sorters`` and ``prp --help``, each in a fresh interpreter.

    python bench/import_time.py --out bench/results/import-time.json

Runs each command ``--runs`` times (default 7) in a new ``python`` process (the checkout this
file is in first on ``PYTHONPATH``), timing the import inside the process with
``time.perf_counter`` (``--help``: the whole ``main(["--help"])`` call), and prints min / median
in seconds, with the heavy modules the command loaded (numpy and the judges' libraries).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "threadpoolctl", "httpx", "torch", "transformers", "llama_cpp", "pytrec_eval", "asyncio")
PROBES = {
    "import prp": "import prp",
    "import sorters": "import sorters",
    "prp --help": "from prp.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
}
TIMED = """
import io, json, sys, time, contextlib
started = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
{body}
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "modules": sorted({{m.split(".")[0] for m in sys.modules}})}}))
"""


def once(body: str) -> dict:
    code = TIMED.format(body="\n".join("    " + line for line in body.splitlines()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    opts = parser.parse_args()
    rows = []
    print(f"{'command':>16} {'min s':>7} {'median s':>8}  heavy modules loaded")
    for label, body in PROBES.items():
        runs = [once(body) for _ in range(opts.runs)]
        times = [r["seconds"] for r in runs]
        heavy = sorted(set(runs[0]["modules"]) & set(HEAVY))
        row = {"command": label, "min_seconds": round(min(times), 4),
               "median_seconds": round(statistics.median(times), 4), "heavy_modules": heavy}
        rows.append(row)
        print(f"{label:>16} {row['min_seconds']:>7.3f} {row['median_seconds']:>8.3f}  "
              f"{', '.join(heavy) or '-'}")
    if opts.out:
        command = " ".join(["python", "bench/import_time.py", *sys.argv[1:]])
        report = {"command": command, "runs": opts.runs, "rows": rows}
        opts.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
