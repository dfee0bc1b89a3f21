"""A bounded soak of the HTTP backend's endpoint pool under mixed faults (loopback only).

    python bench/soak.py --out bench/results/soak.txt

Ranks ``--queries`` synthetic queries of ``--depth`` candidates (quicksort, k=10, B=8, orders
both, every query in flight, ``--concurrency`` inferences at once) through the OpenAI-compatible
HTTP backend (the server's tokenizer, a persistent cache) twice, against judges on 127.0.0.1
(tests/http_fault_server.py) that rank by a hidden relevance table:

1. fault-free: three healthy endpoints; its rankings are the reference;
2. the soak: three endpoints that each answer ``--fault-rate`` of the judging requests with a
   fault drawn from 500, 503, 429 (Retry-After), a dropped connection, a malformed 200 and an
   answer slower than the client's timeout; one endpoint dies (its port refuses connections) for
   ``--outage`` of the fault-free run's time, starting at a third of it, and comes back.

Checks (the exit code is 1 if one fails): no ranking differs from the fault-free run; no
judgment is lost (every prompt paid for is in the cache, none unparsed, and a rerun over the
cache pays nothing and ranks the same); resident memory is flat after warm-up (the first quarter
of the soak): it grows by less than ``--rss-slack`` MB. Stops itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the loopback fault server the test suite uses

from http_fault_server import DROP, MALFORMED, SLOW, Endpoints, status  # noqa: E402

from prp import Reranker  # noqa: E402
from prp.cache import DiskCache  # noqa: E402
from prp.oracles.http import OpenAIBackend  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
WORDS = "passage about the topic with some words that make it read like a search result".split()


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


class RSSSampler:
    """Samples this process's resident memory every ``period`` seconds, in a thread."""

    def __init__(self, period: float = 0.5) -> None:
        self.period, self.samples = period, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        while not self.done.wait(self.period):
            self.samples.append((time.perf_counter() - start, rss_mb()))

    def __enter__(self) -> RSSSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def synthetic(queries: int, depth: int, seed: int):
    rng = random.Random(seed)
    relevance, requests = {}, []
    for q in range(queries):
        ids = [f"q{q}d{i}" for i in range(depth)]
        for d in ids:
            relevance[d] = rng.random()
        docs = [f"doc {d} " + " ".join(rng.choices(WORDS, k=10)) for d in ids]
        requests.append({"qid": f"q{q}", "query": f"query number {q}", "docs": docs, "doc_ids": ids})
    return relevance, requests


def backend(urls: list[str], args) -> OpenAIBackend:
    return OpenAIBackend("fake-judge", urls, timeout=args.timeout, max_retries=args.max_retries,
                         backoff=0.2, hedge_min=0.5, seed=args.seed)


def rank(judge: OpenAIBackend, requests, cache, args):
    reranker = Reranker(judge, sorter="quicksort", k=10, batch_size=8, orders="both", cache=cache,
                        concurrency=args.concurrency, in_flight=None)
    started = time.perf_counter()
    results = reranker.rank_many(requests)
    return results, time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--endpoints", type=int, default=3)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--outage", type=float, default=0.25,
                    help="share of the fault-free time one endpoint is down")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=2.0, help="client timeout, seconds")
    ap.add_argument("--max-retries", type=int, default=6)
    ap.add_argument("--rss-slack", type=float, default=25.0, help="MB of growth after warm-up allowed")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    threading.Timer(args.max_seconds, lambda: os._exit(3)).start()  # bounded, whatever happens
    relevance, requests = synthetic(args.queries, args.depth, args.seed)
    lines = [f"command: python bench/soak.py {' '.join(sys.argv[1:])}".rstrip(),
             f"{args.queries} queries x depth {args.depth}, quicksort k=10 B=8 orders=both, "
             f"concurrency {args.concurrency}, {args.endpoints} endpoints, timeout {args.timeout} s"]

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        with Endpoints(["ok"] * args.endpoints, relevance, record=False) as pool:
            ref_backend = backend(pool.urls, args)
            reference, ref_seconds = rank(ref_backend, requests, DiskCache(Path(tmp) / "ref"), args)
        ref_rankings = [r.doc_ids for r in reference]
        prompts = sum(r.cost.prompts for r in reference)
        inferences = sum(r.cost.inferences for r in reference)
        say(f"fault-free: {ref_seconds:.1f} s, {prompts} prompts, {inferences:g} inferences, "
            f"{ref_backend.stats()['requests']} HTTP requests "
            f"({ref_backend.stats()['tokenizer_requests']} tokenizer)")

        mix = [status(500), status(503), status(429, retry_after="0.2"), DROP, MALFORMED, SLOW]
        cache = DiskCache(Path(tmp) / "soak")
        outage_at, outage = ref_seconds / 3, args.outage * ref_seconds
        with Endpoints(["faulty"] * args.endpoints, relevance, fault_rate=args.fault_rate, fault_mix=mix,
                       slow_seconds=args.timeout + 1.0, record=False, seed=args.seed) as pool:
            victim = pool.servers[1]

            def outage_script() -> None:
                time.sleep(outage_at)
                victim.stop()
                time.sleep(outage)
                victim.start()

            killer = threading.Thread(target=outage_script, daemon=True)
            soak_backend = backend(pool.urls, args)
            with RSSSampler() as sampler:
                killer.start()
                results, seconds = rank(soak_backend, requests, cache, args)
            killer.join()
            faults = sum(j.random_faults for j in pool.judges)
            reached = sum(j.judge_count for j in pool.judges)
        stats = soak_backend.stats()
        wrong = sum(r.doc_ids != ref for r, ref in zip(results, ref_rankings, strict=True))
        paid = sum(r.cost.prompts for r in results)
        unparsed = sum(r.cost.unparsed for r in results)
        lost = paid - len(cache)
        say(f"soak: {seconds:.1f} s ({seconds / ref_seconds:.2f}x fault-free), {paid} prompts, "
            f"{stats['judge_requests']} judging requests ({stats['judge_requests'] / inferences:.2f} per "
            f"inference), {stats['retries']} retries, {stats['hedges']} hedged copies; "
            f"{faults} faults injected in {reached} requests that reached a server "
            f"({faults / max(reached, 1):.1%}); endpoint {victim.url} down from {outage_at:.1f} s "
            f"for {outage:.1f} s")
        for e in stats["endpoints"]:
            say(f"  {e['url']}: {e['requests']} requests, {e['failures']} failures "
                f"({e['hedges_lost']} lost to a copy), {e['state']} at the end")
        rerun_backend = backend(["http://127.0.0.1:9"], args)  # nothing listens: all from the cache
        rerun, _ = rank(rerun_backend, requests, cache, args)
        rerun_paid = sum(r.cost.prompts for r in rerun)
        rerun_wrong = sum(r.doc_ids != ref for r, ref in zip(rerun, ref_rankings, strict=True))
        cache.close()
        samples = sampler.samples
        warm = [mb for t, mb in samples if t <= seconds / 4]
        after = [mb for t, mb in samples if t > seconds / 4]
        base = warm[-1] if warm else samples[0][1]
        growth = (max(after) - base) if after else 0.0
        say(f"wrong rankings: {wrong} of {len(results)}; lost judgments: {lost} (paid {paid}, cached "
            f"{len(cache)}, unparsed {unparsed}); rerun over the cache: {rerun_paid} prompts paid, "
            f"{rerun_wrong} rankings differ")
        say(f"RSS: {samples[0][1]:.0f} MB at start, {base:.0f} MB after warm-up, "
            f"max {max(after or [base]):.0f} MB after it, {samples[-1][1]:.0f} MB at the end: "
            f"growth {growth:+.1f} MB "
            f"({len(samples)} samples)")
        quarters = [min(samples, key=lambda x, q=q: abs(x[0] - q * seconds)) for q in (0.25, 0.5, 0.75, 1.0)]
        say("RSS by time: " + ", ".join(f"{t:.0f} s {mb:.0f} MB" for t, mb in quarters))
        ok = wrong == 0 and lost == 0 and unparsed == 0 and rerun_paid == 0 and rerun_wrong == 0 \
            and growth < args.rss_slack
        say("PASS" if ok else "FAIL")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    os._exit(code)  # the bound timer thread must not keep the process alive
