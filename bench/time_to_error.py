"""Seconds to the error when the judge is out: 503 to everything, a refused port, a hang.

    python bench/time_to_error.py --out bench/results/time-to-error.txt \\
        --json bench/results/time-to-error.json

Against loopback fault servers only (tests/http_fault_server.py, the ones the test suite uses):

* ``503``: a server answering HTTP 503 to every request (judging, tokenizer, GET);
* ``refused``: a port nothing listens on;
* ``hang``: a server that accepts connections and never answers.

For each fault and concurrency (``--concurrency``, default 1 4 16 64) three ways in, each in a
process of its own, with the OpenAI judge's defaults (timeout 60 s, 4 retries, the server's
tokenizer), batch size 8:

* ``cli``: ``prp rerank --judge openai --concurrency C`` over 64 queries of 20 candidates:
  seconds from the process's start to its exit (interpreter start included), and the exit code
  (3: backend failure).
* ``api``: ``Reranker(OpenAIBackend(...), batch_size=8, concurrency=C).rank_many`` over the same
  queries: seconds from the call to its exception (measured in the child).
* ``serve``: ``prp serve --judge openai --concurrency 4`` and C concurrent clients, each posting
  one query of 20 documents to ``/v1/rerank``: seconds until the last client has its answer,
  the statuses seen, and whether every error carried ``Retry-After``.

Plus one ``serve`` row with ``"timeout": 2`` in the body against the hanging judge (the answer
should be a cut ranking, status 200, ``usage.cut`` true, in about 2 s).

Every cell is capped at ``--cap`` seconds (default 60): a cell still running is killed and
shown as ``> CAP``, so a regression reads as a number, never as a hung bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the loopback fault servers the test suite uses

from http_fault_server import FakeJudge, FaultServer, HangServer, refused_url, status  # noqa: E402

QUERIES, DOCS, B = 64, 20, 8
FAULTS = ("503", "refused", "hang")
MODES = ("cli", "api", "serve")
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def queries(n: int = QUERIES) -> list[dict[str, Any]]:
    return [{"qid": f"q{q}", "query": f"query {q}",
             "candidates": [{"docid": f"q{q}d{i}", "text": f"doc q{q}d{i} passage {i}"} for i in range(DOCS)]}
            for q in range(n)]


def fault_url(fault: str, stack: ExitStack) -> str:
    """A loopback URL showing ``fault`` (its server lives as long as ``stack``)."""
    if fault == "503":
        return stack.enter_context(FaultServer(FakeJudge({}, always=status(503)))).url
    if fault == "hang":
        return stack.enter_context(HangServer()).url
    return refused_url()


def _run_child(command: list[str], cap: float) -> tuple[float | None, int | None, str]:
    """(seconds to exit or None past the cap, exit code, last stderr line)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=cap)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None, None, ""
        seconds = time.perf_counter() - started
        err.seek(0)
        lines = [x for x in err.read().splitlines() if x.strip()]
    last = lines[-1] if lines else ""
    if out.strip().startswith("{"):  # the api child reports its own time
        report = json.loads(out.strip().splitlines()[-1])
        return report["seconds"], proc.returncode, report["error"]
    return seconds, proc.returncode, last


def cell_cli(url: str, concurrency: int, cap: float, tmp: Path) -> dict[str, Any]:
    path = tmp / "candidates.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in queries()))
    command = [sys.executable, "-m", "prp.cli", "rerank", "--input", str(path), "--output",
               str(tmp / "out.trec"), "--judge", "openai", "--base-url", url + "/v1", "--model", "fake",
               "--batch-size", str(B), "--concurrency", str(concurrency), "--quiet"]
    seconds, code, last = _run_child(command, cap)
    return {"seconds": seconds, "exit": code, "message": last}


API_CHILD = """
import json, sys, time
from prp import Reranker
from prp.oracles.http import OpenAIBackend
url, concurrency, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.loads(line) for line in open(path)]
requests = [{"qid": r["qid"], "query": r["query"], "docs": [c["text"] for c in r["candidates"]],
             "doc_ids": [c["docid"] for c in r["candidates"]]} for r in rows]
reranker = Reranker(OpenAIBackend("fake", url), batch_size=8, concurrency=concurrency)
started = time.perf_counter()
try:
    reranker.rank_many(requests)
    error = ""
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
print(json.dumps({"seconds": time.perf_counter() - started, "error": error}))
"""


def cell_api(url: str, concurrency: int, cap: float, tmp: Path) -> dict[str, Any]:
    path = tmp / "candidates.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in queries()))
    command = [sys.executable, "-c", API_CHILD, url, str(concurrency), str(path)]
    seconds, code, message = _run_child(command, cap)
    return {"seconds": seconds, "exit": code, "message": message}


class Service:
    """``prp serve --judge openai`` on a free loopback port, as a subprocess."""

    def __init__(self, judge_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("w")
        command = [sys.executable, "-m", "prp.cli", "serve", "--judge", "openai",
                   "--base-url", judge_url + "/v1", "--model", "fake", "--port", str(self.port),
                   "--batch-size", str(B), "--concurrency", "4", "--drain-seconds", "1"]
        self.proc = subprocess.Popen(command, env=ENV, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_up(self) -> None:
        import httpx

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prp serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prp serve did not come up in 90 s")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


async def _clients(url: str, n: int, cap: float, extra: dict[str, Any]) -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient(timeout=cap, limits=httpx.Limits(max_connections=n + 4)) as client:
        async def one(q: dict[str, Any]) -> dict[str, Any]:
            body = {"query": q["query"], "documents": [c["text"] for c in q["candidates"]], **extra}
            started = time.perf_counter()
            try:
                response = await client.post(url + "/v1/rerank", json=body)
            except httpx.TimeoutException:
                return {"seconds": None, "status": None}
            json_answer = response.headers.get("content-type", "").startswith("application/json")
            answer = response.json() if json_answer else {}
            return {"seconds": time.perf_counter() - started, "status": response.status_code,
                    "retry_after": response.headers.get("retry-after"),
                    "message": answer.get("message", ""), "cut": (answer.get("usage") or {}).get("cut")}

        return list(await asyncio.gather(*(one(q) for q in queries(n))))


def cell_serve(url: str, concurrency: int, cap: float, tmp: Path, extra: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    service = Service(url, tmp / "serve.log")
    try:
        service.wait_up()
        answers = asyncio.run(_clients(service.url, concurrency, cap, extra or {}))
    finally:
        service.close()
    times = [a["seconds"] for a in answers]
    statuses = sorted({str(a["status"]) for a in answers})
    errors = [a for a in answers if a["status"] not in (200, None)]
    ok = [a for a in answers if a["status"] == 200]
    return {"seconds": None if None in times else max(times), "statuses": statuses,
            "retry_after": all(a["retry_after"] for a in errors) if errors else None,
            "cut": all(a["cut"] for a in ok) if ok else None,
            "message": next((a["message"] for a in errors), "")}


CELLS = {"cli": cell_cli, "api": cell_api, "serve": cell_serve}


def show(seconds: float | None, cap: float) -> str:
    return f"> {cap:g}" if seconds is None else f"{seconds:.1f}"


def _detail(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cell.items() if k not in ("mode", "fault", "concurrency", "seconds", "message")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--cap", type=float, default=60.0, help="seconds a cell may take (default 60)")
    parser.add_argument("--label", default="", help="a word for the header (e.g. before / after)")
    parser.add_argument("--out", type=Path, help="the table, as text")
    parser.add_argument("--json", type=Path, help="every cell, as JSON")
    args = parser.parse_args()
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            for fault in args.faults:
                for concurrency in args.concurrency:
                    with ExitStack() as stack:
                        url = fault_url(fault, stack)
                        cell = CELLS[mode](url, concurrency, args.cap, Path(tmp))
                    cell.update(mode=mode, fault=fault, concurrency=concurrency)
                    cells.append(cell)
                    print(f"{mode:5} {fault:7} c={concurrency:<3} {show(cell['seconds'], args.cap):>6} s  "
                          f"{_detail(cell)}", file=sys.stderr, flush=True)
        if "serve" in args.modes and "hang" in args.faults:
            with ExitStack() as stack:
                cell = cell_serve(fault_url("hang", stack), 4, args.cap, Path(tmp), {"timeout": 2})
            cell.update(mode="serve timeout=2", fault="hang", concurrency=4)
            cells.append(cell)
            print(f"serve timeout=2 hang {show(cell['seconds'], args.cap)} s {cell}", file=sys.stderr)
    header = [f"# time to error{' (' + args.label + ')' if args.label else ''}: "
              f"python bench/time_to_error.py {' '.join(sys.argv[1:])}",
              f"# seconds to the error (cli: process start to exit; api: rank_many call to its exception; "
              f"serve: until the last of C concurrent clients has its answer); cap {args.cap:g} s", ""]
    lines = header + ["mode   fault    " + "".join(f"c={c:<8}" for c in args.concurrency)]
    for mode in args.modes:
        for fault in args.faults:
            row = [c for c in cells if c["mode"] == mode and c["fault"] == fault]
            lines.append(f"{mode:6} {fault:8} " + "".join(f"{show(c['seconds'], args.cap):<10}" for c in row))
    lines.append("")
    for cell in cells:
        lines.append(f"{cell['mode']} {cell['fault']} c={cell['concurrency']}: "
                     f"{show(cell['seconds'], args.cap)} s {json.dumps(_detail(cell))}")
        if cell.get("message"):
            lines.append(f"    {cell['message'][:300]}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"command": "python bench/time_to_error.py " + " ".join(sys.argv[1:]),
                                         "cap": args.cap, "cells": cells}, indent=1) + "\n")


if __name__ == "__main__":
    main()
