"""A simulated judge with no judgments for a query says so: once per library call
(NoJudgmentsWarning), in one stderr line of the CLI, in the service's ``warnings`` field."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import free_port

import prp
from prp import NoisyOracle, NoJudgmentsWarning, PerfectOracle, RankRequest, Reranker, ScoresOracle
from prp.cli import main
from prp.oracles.simulated import no_judgments

ROOT = Path(__file__).resolve().parents[1]
QRELS = {"q1": {"a": 2, "c": 0}, "q2": {"zz": 1}}
REQUESTS = [RankRequest("fleas", ["x", "y", "z"], ["a", "b", "c"], "q1"),  # judged (b is grade 0)
            RankRequest("cats", ["x", "y"], ["d", "e"], "q2"),  # qid judged, none of its docs
            RankRequest("dogs", ["x", "y", "w"], ["f", "g", "h"], "q3"),  # qid not in the qrels
            RankRequest("one", ["x"], ["i"], "q4")]  # one candidate: nothing to rank


def caught(call):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in seen if issubclass(w.category, NoJudgmentsWarning)]


def test_no_judgments_names_the_unjudged_queries_and_their_documents():
    report = no_judgments(QRELS, REQUESTS)
    assert (report.queries, report.missing, report.unmatched, report.documents) == (3, ("q3",), ("q2",), 5)
    text = report.message()
    assert text.startswith("2 of 3 queries (5 documents) had no judgments in the qrels")
    assert "1 qid not in the qrels: 'q3'" in text and "none of its documents: 'q2'" in text
    assert "likely cause: query or document ids that are not the ones in the qrels" in text
    assert no_judgments(QRELS, REQUESTS[:1]) is None  # partly judged: the rest are grade 0
    assert no_judgments(QRELS, [("q1", ["b", "c"])]) is None


def test_a_call_warns_once_however_many_prompts():
    judge = PerfectOracle(QRELS)
    results, seen = caught(lambda: Reranker(judge, batch_size=1).rank_many(REQUESTS))
    assert len(seen) == 1 and results[1].cost.prompts > 0
    assert str(seen[0].message).startswith("2 of 3 queries (5 documents)")
    assert "kept their input order" in str(seen[0].message)
    assert results[2].doc_ids == ["f", "g", "h"]  # what the warning is about: input order
    _, seen = caught(lambda: Reranker(judge).rank_many(REQUESTS[:1]))
    assert seen == []


def test_the_cohere_case_no_ids_at_all_warns():
    """No qid and no doc ids: the query text and positions are looked up, and are not there."""
    _, seen = caught(lambda: Reranker(PerfectOracle(QRELS)).rank("how long do fleas live", ["p", "q"]))
    assert len(seen) == 1 and "'how long do fleas live'" in str(seen[0].message)


def test_a_noisy_judge_says_what_it_did_and_a_scores_judge_never_warns():
    _, seen = caught(lambda: Reranker(NoisyOracle(QRELS)).rank_many(REQUESTS))
    assert len(seen) == 1 and "bias and noise alone" in str(seen[0].message)
    _, seen = caught(lambda: Reranker(ScoresOracle(lambda qid, d: 0.0)).rank_many(REQUESTS))
    assert seen == []


def test_the_warning_is_exported_from_prp():
    assert "NoJudgmentsWarning" in prp.__all__ and issubclass(prp.NoJudgmentsWarning, UserWarning)
    assert prp.NoJudgmentsWarning.__doc__


def write_input(tmp_path):
    lines = [{"qid": r.qid, "query": r.query,
              "candidates": [{"docid": d, "text": t} for d, t in zip(r.doc_ids, r.docs, strict=True)]}
             for r in REQUESTS]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {g}\n" for q, grades in QRELS.items()
                                                for d, g in grades.items()))
    return str(tmp_path / "c.jsonl"), str(tmp_path / "qrels.txt")


def test_prp_rerank_prints_one_warning_line(tmp_path, capsys):
    candidates, qrels = write_input(tmp_path)
    assert main(["rerank", "--input", candidates, "--judge", "perfect", "--qrels", qrels, "--batch-size", "1",
                 "--output", str(tmp_path / "out.run")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("prp rerank: warning: 2 of 3 queries (5 documents)")
    (tmp_path / "qrels.txt").write_text("q1 0 a 1\nq2 0 d 1\nq3 0 h 2\n")
    assert main(["rerank", "--input", candidates, "--judge", "perfect", "--qrels", qrels,
                 "--output", str(tmp_path / "out.run")]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["simulate", "bench"])
def test_grid_commands_warn_once_before_the_grid(tmp_path, capsys, command):
    candidates, qrels = write_input(tmp_path)
    extra = ["--out", str(tmp_path / "report")] if command == "bench" else []
    assert main([command, "--input", candidates, "--qrels", qrels, "--judge", "perfect", "--sorters",
                 "quicksort,heapsort", "--batch-sizes", "1,2", *extra]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(lines) == 1, lines  # 4 cells, one line
    assert lines[0].startswith(f"prp {command}: warning: 2 of 3 queries (5 documents)")
    assert "the metrics cannot score them" in lines[0]


def test_dl19_judges_every_query_so_nothing_is_said(dl19_dir, capsys):
    assert main(["simulate", "--data", str(dl19_dir), "--sorters", "quicksort", "--batch-sizes", "8",
                 "--cache", "on"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_service_response_carries_the_warning():
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from prp.serve.app import create_app

    app = create_app(Reranker(PerfectOracle(QRELS), cache=False), linger_ms=0)

    async def ask(bodies):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://prp") as client:
                return [(await client.post("/v1/rerank", json=body)).json() for body in bodies]

    no_ids = {"query": "how long do fleas live", "documents": ["a flea", "a cat", "a dog"]}
    with_ids = {"query": "fleas", "query_id": "q1", "documents": [{"text": "x", "id": "a"},
                                                                  {"text": "y", "id": "b"}]}
    blind, judged = asyncio.run(ask([no_ids, with_ids]))
    assert len(blind["warnings"]) == 1
    assert blind["warnings"][0].startswith("1 of 1 query (3 documents) had no judgments")
    assert "send query_id and each document's id" in blind["warnings"][0]
    assert [r["index"] for r in blind["results"]] == [0, 1, 2]
    assert "warnings" not in judged



def test_the_cohere_sdk_sees_the_warning_from_prp_serve(tmp_path):
    """The issue's case, end to end: the Cohere SDK (which sends no ids) against a real ``prp
    serve`` process with a perfect judge: the response says why the order is the input order."""
    cohere = pytest.importorskip("cohere")
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    (tmp_path / "qrels.txt").write_text("q1 0 0 0\nq1 0 1 1\nq1 0 2 2\n")  # ids: the indexes
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prp.cli", "serve", "--judge", "perfect", "--qrels",
                                 str(tmp_path / "qrels.txt"), "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        try:
            deadline = time.monotonic() + 90
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            client = cohere.ClientV2(api_key="none", base_url=url)
            blind = client.rerank(model="prp", query="how long do fleas live", documents=["a", "b", "c"])
            judged = client.rerank(model="prp", query="q1", documents=["d0", "d1", "d2"])  # ids: 0, 1, 2
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()
    assert [r.index for r in blind.results] == [0, 1, 2]
    assert len(blind.meta.warnings) == 1 and "'how long do fleas live'" in blind.meta.warnings[0]
    assert blind.meta.warnings[0].startswith("1 of 1 query (3 documents) had no judgments in the qrels")
    assert [r.index for r in judged.results] == [2, 1, 0] and not judged.meta.warnings
