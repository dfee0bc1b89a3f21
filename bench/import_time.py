"""Wall time of ``import prp``, ``import sorters`` and ``prp --help``, each in a fresh interpreter.

    python bench/import_time.py --out bench/results/import-time.json

Runs each command ``--runs`` times (default 7) in a new ``python`` process (the checkout this
file is in first on ``PYTHONPATH``), timing the import inside the process with
``time.perf_counter`` (``--help``: the whole ``main(["--help"])`` call), and prints min / median
in seconds, the min of CPU seconds (``time.process_time``: what other processes on the cores
disturb least), with the heavy modules the command loaded (numpy and the judges' libraries).
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
started, cpu = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
{body}
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
modules = sorted({{m.split(".")[0] for m in sys.modules}})
print(json.dumps({{"seconds": seconds, "cpu": cpu, "modules": modules}}))
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
    print(f"{'command':>16} {'min s':>7} {'median s':>8} {'min CPU s':>9}  heavy modules loaded")
    for label, body in PROBES.items():
        runs = [once(body) for _ in range(opts.runs)]
        times = [r["seconds"] for r in runs]
        heavy = sorted(set(runs[0]["modules"]) & set(HEAVY))
        row = {"command": label, "min_seconds": round(min(times), 4),
               "median_seconds": round(statistics.median(times), 4),
               "min_cpu_seconds": round(min(r["cpu"] for r in runs), 4), "heavy_modules": heavy}
        rows.append(row)
        print(f"{label:>16} {row['min_seconds']:>7.3f} {row['median_seconds']:>8.3f} "
              f"{row['min_cpu_seconds']:>9.3f}  "
              f"{', '.join(heavy) or '-'}")
    if opts.out:
        command = " ".join(["python", "bench/import_time.py", *sys.argv[1:]])
        report = {"command": command, "runs": opts.runs, "rows": rows}
        opts.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
