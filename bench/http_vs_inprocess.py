"""One model, two ways: prp's in-process llama.cpp judge against the same GGUF served over HTTP.

    python bench/http_vs_inprocess.py --model qwen2.5-coder-0.5b --queries 2 --depth 10 \
        --sorter allpair --threads 1 --out bench/results/http-vs-inprocess-qwen0.5b.json

Reranks the first ``--queries`` DL19 queries (BM25 top ``--depth``, k = depth, orders both) with
:class:`~prp.oracles.llamacpp.LlamaCppBackend`, then with :class:`~prp.oracles.http.OpenAIBackend`
against ``python -m llama_cpp.server --model <the same file> --logits_all true --n_threads N``
started here on 127.0.0.1, one configuration after the other (never both at once: the figures
are not skewed by two models sharing the cores). The HTTP backend sends single prompts one by one
in the order the in-process judge evaluates them, so the server's KV-cache reuse splits each
prompt as in process. HTTP configurations (``--configs``):

* ``local-chat``: ``tokenizer=<the packaged model>``: truncation and chat template rendered here
  from the GGUF's vocabulary, sent as a completion ending in the answer prefix (the default way
  to judge exactly as in process);
* ``server-chat``: ``tokenizer="server"``, ``endpoint="chat"``: the server's tokenizer
  (``/extras/tokenize``) cuts, the server applies its chat template, the letter is generated;
* ``chars-plain``: the old behaviour (4 characters a token, no chat template), for reference.

For each configuration: Kendall tau of each query's ranking against in process, and the margin
differences (max and mean absolute, sign agreement) over the prompts both sides judged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from prp import Reranker  # noqa: E402
from prp.data import load_retrieve_results  # noqa: E402
from prp.models import model_path  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "trec-dl-2019"
CONFIGS = {
    "local-chat": lambda model: {"tokenizer": model},
    "server-chat": lambda model: {"tokenizer": "server", "endpoint": "chat"},
    "chars-plain": lambda model: {"tokenizer": "chars", "chat": False},
}


class Recorder:
    """A backend wrapper that keeps every prompt's judgment: (qid, first id, second id) -> margin."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.keys_by = inner, inner.name, inner.keys_by
        self.margins: dict[tuple[str, str, str], float | None] = {}
        self.preferred: dict[tuple[str, str, str], str | None] = {}

    async def judge(self, prompts):
        result = await self.inner.judge(prompts)
        for p, j in zip(prompts, result.judgments, strict=True):
            key = (p.qid, p.first_id, p.second_id)
            self.margins[key], self.preferred[key] = j.margin, j.preferred
        return result


def kendall_tau(a: list[str], b: list[str]) -> float:
    """Kendall's tau-a between two orderings of the same items."""
    pos = {d: i for i, d in enumerate(b)}
    n, score = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            score += 1 if pos[a[i]] < pos[a[j]] else -1
    return score / (n * (n - 1) / 2)


def rank(backend, requests, args) -> tuple[dict[str, list[str]], Recorder, float]:
    recorder = Recorder(backend)
    reranker = Reranker(recorder, sorter=args.sorter, k=args.depth, batch_size=args.batch_size,
                        orders="both", cache=None, in_flight=None)
    started = time.perf_counter()
    results = reranker.rank_many(requests)
    return {r.qid: r.doc_ids for r in results}, recorder, time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m llama_cpp.server`` on 127.0.0.1, for as long as the ``with`` lasts."""

    def __init__(self, model: Path, threads: int, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                        "--logits_all", "true", "--n_threads", str(threads), "--n_ctx", "2048",
                        "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = log

    def __enter__(self) -> Server:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError("llama_cpp.server did not start within 180 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def compare(reference: tuple, other: tuple) -> dict:
    ranks_a, rec_a, _ = reference
    ranks_b, rec_b, seconds = other
    taus = {qid: round(kendall_tau(ranks_a[qid], ranks_b[qid]), 4) for qid in ranks_a}
    common = [k for k in rec_a.margins if k in rec_b.margins]
    diffs, agree, standins = [], 0, 0
    for key in common:
        a, b = rec_a.margins[key], rec_b.margins[key]
        agree += rec_a.preferred[key] == rec_b.preferred[key]
        if b is not None and abs(b) == 30.0:  # one letter missing from the server's top-k
            standins += 1
        elif a is not None and b is not None:
            diffs.append(abs(a - b))
    return {"kendall_tau": taus, "min_tau": min(taus.values()), "mean_tau": sum(taus.values()) / len(taus),
            "prompts_compared": len(common), "same_preference": agree,
            "margin_abs_diff_max": round(max(diffs), 4) if diffs else None,
            "margin_abs_diff_mean": round(sum(diffs) / len(diffs), 4) if diffs else None,
            "margins_compared": len(diffs), "stand_in_margins": standins, "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="a packaged model name")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--sorter", default="allpair")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads, each side")
    ap.add_argument("--configs", default="local-chat,server-chat", help=", ".join(CONFIGS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from prp.oracles.http import OpenAIBackend
    from prp.oracles.llamacpp import LlamaCppBackend

    requests = load_retrieve_results(Path(args.data) / "bm25-top100.json", args.depth)[: args.queries]
    path = model_path(args.model)
    report = {"command": "python " + " ".join(sys.argv), "model": args.model,
              "queries": [r.qid for r in requests], "depth": args.depth, "sorter": args.sorter,
              "threads": args.threads, "configs": {}}

    inproc = LlamaCppBackend(args.model, n_threads=args.threads)
    reference = rank(inproc, requests, args)
    report["inprocess"] = {"backend": inproc.name, "seconds": round(reference[2], 1),
                           "prompts": len(reference[1].margins), "rankings": reference[0]}
    print(f"in process: {len(reference[1].margins)} prompts in {reference[2]:.0f} s", flush=True)
    del inproc

    log = Path(tempfile.gettempdir()) / f"http-vs-inprocess-{os.getpid()}.server.log"
    with Server(path, args.threads, log) as server:
        for name in filter(None, args.configs.split(",")):
            backend = OpenAIBackend(args.model, server.url, timeout=300.0, **CONFIGS[name](args.model))
            other = rank(backend, requests, args)
            row = compare(reference, other)
            row.update(backend=backend.name, http=backend.stats(), rankings=other[0])
            row["http"].pop("endpoints")
            report["configs"][name] = row
            print(f"{name}: tau {row['kendall_tau']}, margins |diff| max {row['margin_abs_diff_max']} "
                  f"mean {row['margin_abs_diff_mean']} over {row['margins_compared']} prompts, "
                  f"same preference {row['same_preference']}/{row['prompts_compared']}, "
                  f"{row['http']['requests']} HTTP requests, {row['seconds']:.0f} s", flush=True)
            asyncio.run(backend.aclose())
            if args.out:  # after each configuration: a long run keeps what it measured
                Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
