"""``prp rerank`` in process against ``--executor ray`` on this machine, on synthetic DL19-shaped
data with the perfect judge; then a second Ray job over the same queries with another ranker,
served from a Redis cache the first one filled.

    python bench/ray_scale.py --queries 10000 --parts throughput --out bench/results/ray-scale-10000.json
    python bench/ray_scale.py --queries 2000 --parts throughput,cache --out bench/results/ray-scale-2000.json

Data: :func:`bench.memory.write_data` (``--queries`` x ``--depth`` candidates, DL19's passage
lengths and grade proportions). Each run is its own ``prp rerank`` process (quicksort, k=10,
B=8, orders both, the perfect judge: no model, so what is measured is prp, Ray and the cache).

* ``throughput``: in process (one engine, ``--in-flight`` 256) against Ray with ``--actors``
  actors (``--ray-cpus`` each, ``--ray-batch-size`` queries a call, each actor's cache in its
  own memory): wall seconds and queries per second from the start of the command to its exit
  (Ray's cluster start included), their ratio, the driver's peak RSS (``wait4``) and each
  actor's peak RSS (``VmHWM`` of every process whose title names the ``RerankActor``, read
  every 0.2 s while the job runs: a lower bound if an actor peaked in its last 0.2 s).
* ``cache``: a redis-server on loopback started for the bench; job 1 (quicksort) fills it, job 2
  (heapsort, another ranker) over the same queries pays only for prompts job 1 did not judge:
  its prompts, cache hits and virtual prompts (what it would have paid with no cache).

The load of the machine (``/proc/loadavg``) is recorded before and after each run: on a shared
machine wall seconds are as good as the CPUs that were free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from memory import write_data  # noqa: E402


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class ActorWatch:
    """Peak RSS (VmHWM, MB) of every live process whose command line names ``marker``."""

    def __init__(self, marker: str = "RerankActor") -> None:
        self.marker, self.peaks, self._stop = marker, {}, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if self.marker.encode() not in (proc / "cmdline").read_bytes():
                        continue
                    for line in (proc / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            mb = int(line.split()[1]) / 1024
                            self.peaks[proc.name] = max(self.peaks.get(proc.name, 0.0), mb)
                except OSError:
                    continue
            time.sleep(0.2)

    def __enter__(self) -> ActorWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def prp_rerank(args: list[str]) -> dict:
    """One ``prp rerank`` process: exit code, seconds, peak RSS (MB), its JSON summary."""
    command = [sys.executable, "-m", "prp.cli", "rerank", *args, "--format", "json", "--quiet"]
    before = loadavg()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"prp rerank failed ({code}): {stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    cost = summary["cost"]
    return {"seconds": round(seconds, 1), "driver_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "queries": summary["queries"], "queries_per_second": round(summary["queries"] / seconds, 1),
            "prompts": cost["prompts"], "virtual_prompts": cost["virtual_prompts"],
            "inferences": cost["inferences"], "cache_hits": cost["cache_hits"],
            "comparisons": cost["comparisons"], "load_before": before, "load_after": loadavg()}


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("the cache part needs redis-server (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(300):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--ray-cpus", type=float, default=0.5)
    parser.add_argument("--ray-batch-size", type=int, default=64)
    parser.add_argument("--parts", default="throughput,cache", help="throughput, cache or both")
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()
    parts = set(opts.parts.split(","))
    report: dict = {"command": "python bench/ray_scale.py " + " ".join(sys.argv[1:]), "queries": opts.queries,
                    "depth": opts.depth, "judge": "perfect", "sorter": "quicksort (job 2: heapsort)",
                    "k": 10, "batch_size": 8, "cpus": os.cpu_count(), "uptime_start": loadavg()}
    ray = ["--executor", "ray", "--ray-actors", str(opts.actors), "--ray-cpus", str(opts.ray_cpus),
           "--ray-batch-size", str(opts.ray_batch_size)]
    with tempfile.TemporaryDirectory(prefix="prp-ray-scale-") as tmp:
        work = Path(tmp)
        cands, qrels = write_data(work, opts.queries, opts.depth)
        base = ["--input", str(cands), "--judge", "perfect", "--qrels", str(qrels),
                "--depth", str(opts.depth), "--k", "10", "--batch-size", "8"]
        if "throughput" in parts:
            inproc = prp_rerank([*base, "--output", str(work / "inproc.trec")])
            print("in process:", inproc, file=sys.stderr)
            with ActorWatch() as watch:
                onray = prp_rerank([*base, "--output", str(work / "ray.trec"), *ray])
            onray["actor_peak_rss_mb"] = sorted(round(v, 1) for v in watch.peaks.values())
            print("ray:", onray, file=sys.stderr)
            same = (work / "inproc.trec").read_bytes() == (work / "ray.trec").read_bytes()
            report["throughput"] = {"in_process": inproc, "ray": onray, "same_output": same,
                                    "ray_over_in_process": round(onray["queries_per_second"]
                                                                 / inproc["queries_per_second"], 2)}
        if "cache" in parts:
            proc, url = start_redis(work)
            try:
                jobs = {}
                for name, sorter in (("job1_quicksort", "quicksort"), ("job2_heapsort", "heapsort")):
                    with ActorWatch() as watch:
                        jobs[name] = prp_rerank([*base, "--sorter", sorter, "--cache-dir", url,
                                                 "--output", str(work / f"{name}.trec"), *ray])
                    jobs[name]["actor_peak_rss_mb"] = sorted(round(v, 1) for v in watch.peaks.values())
                    print(name, jobs[name], file=sys.stderr)
                job2 = jobs["job2_heapsort"]
                jobs["job2_paid_share"] = round(job2["prompts"] / job2["virtual_prompts"], 4)
                report["cache"] = jobs
            finally:
                proc.terminate()
                proc.wait(30)
    report["uptime_end"] = loadavg()
    text = json.dumps(report, indent=1)
    print(text)
    if opts.out:
        opts.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
