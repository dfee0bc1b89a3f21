"""Issue 8, command-line side: bad input caught at input (exit 2, file and line) instead of a
broken output file, the unparsed policy in ``prp rerank`` (warning, --max-unparsed, exit 5),
Ctrl-C and SIGTERM (one line, exit 130, what was kept), an empty input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prp.cache import DiskCache
from prp.cli import main
from prp.cli import rerank as rerank_cli
from prp.data import load_qrels
from prp.oracles import PerfectOracle
from prp.types import BatchResult, Judgment

ROOT = Path(__file__).resolve().parents[1]


def write_inputs(tmp: Path, queries: int = 2, n: int = 5) -> dict[str, Path]:
    """``queries`` queries of ``n`` candidates in every layout, with graded qrels."""
    files = {name: tmp / name for name in ("topics.tsv", "docs.jsonl", "first.run", "cands.jsonl",
                                           "retrieve.json", "qrels.txt")}
    data = {f"q{q}": [(f"q{q}d{i}", (i * 7 + q) % 4) for i in range(n)] for q in range(queries)}
    files["topics.tsv"].write_text("".join(f"{q}\tquery {q}\n" for q in data))
    files["docs.jsonl"].write_text("".join(json.dumps({"docid": d, "text": f"text of {d}"}) + "\n"
                                           for c in data.values() for d, _ in c))
    files["first.run"].write_text("".join(f"{q} Q0 {d} {r} {100 - r} bm25\n" for q, c in data.items()
                                          for r, (d, _) in enumerate(c, 1)))
    files["qrels.txt"].write_text("".join(f"{q} 0 {d} {g}\n" for q, c in data.items() for d, g in c))
    files["cands.jsonl"].write_text("".join(json.dumps(
        {"qid": q, "query": f"query {q}", "candidates": [{"docid": d, "text": f"text of {d}"} for d, _ in c]})
        + "\n" for q, c in data.items()))
    files["retrieve.json"].write_text(json.dumps([
        {"query": f"query {q}", "hits": [{"qid": q, "docid": d, "rank": r, "score": 9.0 - r,
                                          "content": f"text of {d}"} for r, (d, _) in enumerate(c, 1)]}
        for q, c in data.items()], indent=1))
    return files


def rerank(capsys, files: dict[str, Path], *args: str, judge: str = "perfect") -> tuple[int, str, str]:
    code = main(["rerank", "--judge", judge, "--qrels", str(files["qrels.txt"]), *args])
    out, err = capsys.readouterr()
    return code, out, err


def input_args(files: dict[str, Path], layout: str) -> list[str]:
    if layout == "run":
        return ["--run", str(files["first.run"]), "--topics", str(files["topics.tsv"]),
                "--docs", str(files["docs.jsonl"])]
    return ["--input", str(files["cands.jsonl" if layout == "jsonl" else "retrieve.json"])]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_inputs(tmp_path)


# --- bad input: caught at input, exit 2, the file and line named --------------------------------

def _edit_json_line(path: Path, line: int, edit) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = json.dumps(edit(json.loads(lines[line - 1])))
    path.write_text("\n".join(lines) + "\n")


def _edit_retrieve(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))


def _cand(obj: dict, **fields) -> dict:
    obj["candidates"][1].update(fields)
    return obj


def _hit(data: list, **fields) -> None:
    data[1]["hits"][2].update(fields)


def _raw_replace(path: Path, old: bytes, new: bytes) -> None:
    raw = path.read_bytes()
    assert old in raw
    path.write_bytes(raw.replace(old, new, 1))


# (name, layout, how to break the input, expected message with file:line)
BROKEN = [
    ("space in a jsonl docid", "jsonl",
     lambda f: _edit_json_line(f["cands.jsonl"], 2, lambda o: _cand(o, docid="q1 d1")),
     r"cands.jsonl:2: candidates\[1\]: 'docid' 'q1 d1' holds whitespace"),
    ("newline in a jsonl qid", "jsonl",
     lambda f: _edit_json_line(f["cands.jsonl"], 1, lambda o: dict(o, qid="q\n0")),
     r"cands.jsonl:1: 'qid' 'q\\n0' holds whitespace"),
    ("tab in a docs docid", "run",
     lambda f: _edit_json_line(f["docs.jsonl"], 3, lambda o: dict(o, docid="q0\td2")),
     r"docs.jsonl:3: 'docid' 'q0\\td2' holds whitespace"),
    ("space in a topics qid", "run",
     lambda f: f["topics.tsv"].write_text("q0\tquery q0\nq 1\tquery q1\n"),
     r"topics.tsv:2: qid 'q 1' holds whitespace"),
    ("space in a retrieve docid", "retrieve",
     lambda f: _edit_retrieve(f["retrieve.json"], lambda d: _hit(d, docid="q1 d2")),
     r"retrieve.json:\d+: entry 1, hits\[2\]: 'docid' 'q1 d2' holds whitespace"),
    ("null docid in retrieve", "retrieve",
     lambda f: _edit_retrieve(f["retrieve.json"], lambda d: _hit(d, docid=None)),
     r"retrieve.json:\d+: entry 1, hits\[2\]: 'docid' must be a non-empty string or integer, got None"),
    ("string rank in retrieve", "retrieve",
     lambda f: _edit_retrieve(f["retrieve.json"], lambda d: _hit(d, rank="10")),
     r"retrieve.json:\d+: entry 1, hits\[2\]: 'rank' must be an integer, got '10'"),
    ("null passage in retrieve", "retrieve",
     lambda f: _edit_retrieve(f["retrieve.json"], lambda d: _hit(d, content=None)),
     r"retrieve.json:\d+: entry 1, hits\[2\]: 'content' must be a string, got None"),
    ("null passage in jsonl", "jsonl",
     lambda f: _edit_json_line(f["cands.jsonl"], 2, lambda o: _cand(o, text=None)),
     r"cands.jsonl:2: candidates\[1\]: 'text' must be a string, got None"),
    ("null passage in docs", "run",
     lambda f: _edit_json_line(f["docs.jsonl"], 4, lambda o: dict(o, text=None)),
     r"docs.jsonl:4: 'text' must be a string, got None"),
    ("NaN score literal", "jsonl",
     lambda f: _raw_replace(f["cands.jsonl"], b'"text": "text of q1d0"}',
                            b'"text": "text of q1d0", "score": NaN}'),
     r"cands.jsonl:2: not valid JSON \(NaN is not a JSON number\)"),
    ("infinite score", "jsonl",
     lambda f: _raw_replace(f["cands.jsonl"], b'"text": "text of q1d2"}',
                            b'"text": "text of q1d2", "score": 1e999}'),  # a float that overflows
     r"cands.jsonl:2: candidates\[2\]: 'score' must be a finite number, got inf"),
    ("non-UTF-8 jsonl", "jsonl", lambda f: _raw_replace(f["cands.jsonl"], b"text of q1d3", b"text \xff q1d3"),
     r"cands.jsonl:2: not valid UTF-8 \(byte 0xff at column \d+\)"),
    ("non-UTF-8 docs", "run", lambda f: _raw_replace(f["docs.jsonl"], b"text of q1d3", b"text \xe9 q1d3"),
     r"docs.jsonl:9: not valid UTF-8 \(byte 0xe9"),
    ("non-UTF-8 topics", "run", lambda f: _raw_replace(f["topics.tsv"], b"query q1", b"query \xc3("),
     r"topics.tsv:2: not valid UTF-8"),
    ("non-UTF-8 run", "run", lambda f: _raw_replace(f["first.run"], b"q1 Q0 q1d4", b"q1 Q0 q1\xfed4"),
     r"first.run:10: not valid UTF-8 \(byte 0xfe at column 9\)"),
    ("non-UTF-8 retrieve", "retrieve",
     lambda f: _raw_replace(f["retrieve.json"], b"text of q1d2", b"text \x80 q1d2"),
     r"retrieve.json:\d+: not valid UTF-8 \(byte 0x80"),
    ("lone surrogate in a passage", "jsonl",
     lambda f: _raw_replace(f["cands.jsonl"], b"text of q1d2", b"text \\ud800 q1d2"),
     r"cands.jsonl:2: candidates\[2\]: 'text' holds a lone surrogate \(U\+D800\)"),
    ("lone surrogate in a docid", "run",
     lambda f: _raw_replace(f["docs.jsonl"], b'"q0d1"', b'"q0\\udc00"'),
     r"docs.jsonl:2: 'docid' holds a lone surrogate \(U\+DC00\)"),
    ("lone surrogate in retrieve", "retrieve",
     lambda f: _raw_replace(f["retrieve.json"], b"text of q0d4", b"text \\udfff"),
     r"retrieve.json:\d+: entry 0, hits\[4\]: 'content' holds a lone surrogate"),
]


@pytest.mark.parametrize("layout, breakage, message", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_bad_input_is_caught_before_any_judging(capsys, monkeypatch, files, tmp_path, layout, breakage,
                                                message):
    breakage(files)
    built = []
    monkeypatch.setattr(rerank_cli, "make_backend", lambda args: built.append(args))
    out = tmp_path / "out.run"
    code, _, err = rerank(capsys, files, *input_args(files, layout), "--output", str(out))
    assert code == 2 and re.search(message, err), err
    assert built == [] and not out.exists()


def test_retrieve_error_names_the_line_of_the_entry(capsys, files, tmp_path):
    _edit_retrieve(files["retrieve.json"], lambda d: _hit(d, docid=None))
    code, _, err = rerank(capsys, files, *input_args(files, "retrieve"), "--output", str(tmp_path / "o"))
    line = int(re.search(r"retrieve.json:(\d+):", err).group(1))
    text = files["retrieve.json"].read_text().splitlines()
    assert code == 2 and text[line - 1].strip() == "{" and '"query": "query q1"' in text[line]


def test_string_ranks_and_good_files_still_read_in_rank_order(capsys, files, tmp_path):
    _edit_retrieve(files["retrieve.json"], lambda d: d[0]["hits"].reverse())  # file order != rank order
    out = tmp_path / "out.run"
    code, _, _ = rerank(capsys, files, *input_args(files, "retrieve"), "--depth", "1", "--output", str(out))
    assert code == 0
    assert [line.split()[2] for line in out.read_text().splitlines()[:5]] == [f"q0d{i}" for i in range(5)]


@pytest.mark.parametrize("layout", ["jsonl", "retrieve", "run"])
def test_an_empty_input_is_bad_input(capsys, files, tmp_path, layout):
    if layout == "jsonl":
        files["cands.jsonl"].write_text("\n\n")
    elif layout == "retrieve":
        files["retrieve.json"].write_text("[ ]\n")
    else:
        files["first.run"].write_text("")
    code, _, err = rerank(capsys, files, *input_args(files, layout), "--output", str(tmp_path / "o"))
    assert code == 2 and "no queries in" in err, err


@pytest.mark.parametrize("options, message", [
    ("bias=abc", "bias must be a finite number, got 'abc'"),
    ("scale=nan", "scale must be a finite number, got nan"),
    ("noise=inf", "noise must be a finite number"),
    ("seed=x", "seed must be an integer"),
])
def test_bad_oracle_options_are_bad_input(capsys, files, tmp_path, options, message):
    out = tmp_path / "out.run"
    code, _, err = rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(out),
                          judge=f"noisy:{options}")
    assert code == 2 and message in err, err
    assert not out.exists()


# --- unparsed answers in prp rerank --------------------------------------------------------------

class EveryTenth(PerfectOracle):
    """Unreadable on every 10th new prompt it is sent (like a server dropping 10 % of answers);
    with ``stubborn`` the same prompts stay unreadable when asked again."""

    def __init__(self, qrels, stubborn: bool = False):
        super().__init__(qrels)
        self.count, self.stubborn, self.bad = 0, stubborn, set()

    async def judge(self, prompts):
        result = await super().judge(prompts)
        out = []
        for p, j in zip(prompts, result.judgments, strict=True):
            key = (p.qid, p.first_id, p.second_id)
            again = key in self.bad
            self.count += not again
            if (not again and self.count % 10 == 0) or (self.stubborn and again):
                self.bad.add(key)
                out.append(Judgment(None, None, parsed=False))
            else:
                out.append(j)
        return BatchResult(out)


def test_unparsed_answers_are_retried_and_named_on_stderr(capsys, monkeypatch, tmp_path):
    files = write_inputs(tmp_path, queries=6, n=20)
    out, clean = tmp_path / "out.run", tmp_path / "clean.run"
    assert rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(clean))[0] == 0
    monkeypatch.setattr(rerank_cli, "make_backend", lambda args: EveryTenth(load_qrels(args.qrels)))
    code, _, err = rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(out))
    assert code == 0 and "unparsed" not in err  # every retry was read: nothing to warn about
    assert out.read_text() == clean.read_text()

    judge = EveryTenth(load_qrels(files["qrels.txt"]), stubborn=True)
    monkeypatch.setattr(rerank_cli, "make_backend", lambda args: judge)
    code, stdout, err = rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(out),
                               "--format", "json")
    cost = json.loads(stdout)["cost"]
    assert code == 0 and cost["unparsed"] == len(judge.bad) > 0
    judged = cost["prompts"] - cost["unparsed_retries"]
    warning = [line for line in err.splitlines() if "unparsed" in line]
    assert warning == [f"prp rerank: warning: {cost['unparsed']} of {judged} prompts "
                       f"({100 * cost['unparsed'] / judged:.2f} %) stayed unparsed after one retry and "
                       "were counted as ties (--max-unparsed FRACTION makes this an error)"]


def test_max_unparsed_fails_the_run_with_exit_5(capsys, monkeypatch, tmp_path):
    files = write_inputs(tmp_path, queries=6, n=20)
    monkeypatch.setattr(rerank_cli, "make_backend",
                        lambda args: EveryTenth(load_qrels(args.qrels), stubborn=True))
    out = tmp_path / "out.run"
    code, _, err = rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(out),
                          "--max-unparsed", "0.01", "--cache-dir", str(tmp_path / "cache"))
    assert code == 5 and "above --max-unparsed 0.01" in err and "no output written" in err, err
    assert not out.exists() and len(DiskCache(tmp_path / "cache")) > 0
    code, _, _ = rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(out),
                        "--max-unparsed", "0.5")
    assert code == 0 and out.exists()
    code, _, err = rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(out),
                          "--max-unparsed", "1.5")
    assert code == 2 and "--max-unparsed must be a fraction" in err


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------------

SLOW_RERANK = """
import asyncio, sys, time
from pathlib import Path
from prp.cli import main
from prp.cli import rerank as cli
from prp.data import load_qrels
from prp.oracles import PerfectOracle

MARKER, MODE = Path(sys.argv[1]), sys.argv[2]

class Slow(PerfectOracle):
    async def judge(self, prompts):
        if MODE == "blocking":
            time.sleep(0.03)  # a judge that never yields to the event loop
        else:
            await asyncio.sleep(0.03)
        result = await super().judge(prompts)
        MARKER.touch()
        return result

cli.make_backend = lambda args: Slow(load_qrels(args.qrels))
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("sig, mode, cached", [(signal.SIGINT, "blocking", True),
                                               (signal.SIGTERM, "async", True),
                                               (signal.SIGINT, "async", False)])
def test_an_interrupt_prints_one_line_keeps_the_cache_and_exits_130(capsys, tmp_path, sig, mode, cached):
    files = write_inputs(tmp_path, queries=20, n=30)
    script, marker, out = tmp_path / "slow.py", tmp_path / "judged", tmp_path / "out.run"
    script.write_text(SLOW_RERANK)
    cache = tmp_path / "cache"
    args = ["rerank", *input_args(files, "jsonl"), "--judge", "perfect", "--qrels", str(files["qrels.txt"]),
            "--output", str(out), "--batch-size", "4", *(["--cache-dir", str(cache)] if cached else [])]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script), str(marker), mode, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("prp rerank: interrupted after ") and "no output written" in stderr
    assert stdout == "" and not out.exists() and not list(tmp_path.glob(".out.run.*"))
    if not cached:
        assert "in memory only: lost" in stderr
        return
    kept = int(re.search(r"; (\d+) new judgments kept in the cache at ", stderr).group(1))
    disk = DiskCache(cache)
    assert kept == len(disk) > 0
    disk.close()
    # The rerun pays exactly for what the interrupted run did not keep.
    base = ["--output", str(out), "--batch-size", "4", "--format", "json", *input_args(files, "jsonl")]
    code, full, _ = rerank(capsys, files, *base)
    code2, rest, _ = rerank(capsys, files, *base, "--cache-dir", str(cache))
    assert code == code2 == 0
    assert json.loads(rest)["cost"]["prompts"] == json.loads(full)["cost"]["prompts"] - kept


# --- memory: groups written as they end, defaults bounded ---------------------------------------------

def test_groups_are_written_as_they_end_yet_a_failed_run_writes_nothing(capsys, monkeypatch, tmp_path):
    from conftest import CountingOracle

    from prp.reranker import DEFAULT_IN_FLIGHT, Reranker

    assert Reranker(PerfectOracle({})).settings.in_flight == DEFAULT_IN_FLIGHT == 256
    files = write_inputs(tmp_path, queries=5, n=8)
    whole, grouped = tmp_path / "whole.run", tmp_path / "grouped.run"
    assert rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(whole))[0] == 0
    assert rerank(capsys, files, *input_args(files, "jsonl"), "--output", str(grouped),
                  "--in-flight", "2")[0] == 0
    assert grouped.read_text() == whole.read_text()
    judge = CountingOracle(PerfectOracle(load_qrels(files["qrels.txt"])), fail_after=30)
    monkeypatch.setattr(rerank_cli, "make_backend", lambda args: judge)
    for output in ("-", str(grouped)):
        code, out, err = rerank(capsys, files, *input_args(files, "jsonl"), "--output", output,
                                "--in-flight", "1", "--batch-size", "1")
        assert code == 3 and out == "" and "no output written" in err
        judge.batches.clear()
    assert grouped.read_text() == whole.read_text()  # the earlier file is untouched
