"""``prp rerank``'s predictions name their latency model; a real run refits it beside the cache;
the summary counts HTTP requests; bad judge options fail before any model loads; help is plain."""

from __future__ import annotations

import argparse
import json

import pytest

from prp.cli import build_parser, main
from prp.latency import QWEN_1_5B_CPU

REL = {"d0": 1, "d1": 5, "d2": 3, "d3": 7, "d4": 2, "d5": 6, "d6": 0, "d7": 4}


@pytest.fixture
def candidates(tmp_path):
    path = tmp_path / "candidates.jsonl"
    cands = [{"docid": d, "text": f"doc {d} is a passage about topic {i}"} for i, d in enumerate(REL)]
    path.write_text("".join(json.dumps({"qid": q, "query": f"which doc? {q}", "candidates": cands}) + "\n"
                            for q in ("q1", "q2")))
    return path


def _json(capsys, *args) -> dict:
    code = main(["rerank", *args, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_dry_run_uses_and_names_the_judges_cpu_latency(capsys, candidates):
    report = _json(capsys, "--input", str(candidates), "--k", "3", "--dry-run")
    latency = report["latency"]
    assert (latency["alpha"], latency["beta"], latency["gamma"]) == (
        QWEN_1_5B_CPU.alpha, QWEN_1_5B_CPU.beta, QWEN_1_5B_CPU.gamma)
    assert "qwen2.5-coder-1.5b" in latency["source"] and "measured" in latency["source"]
    per_prompt = report["total"]["predicted_seconds"] / report["total"]["prompts"]
    assert 1.0 < per_prompt < 5.0  # ~2 s a prompt, as measured on these CPUs (not a GPU's 0.06 s)
    assert main(["rerank", "--input", str(candidates), "--dry-run", "--latency", "1,0,0"]) == 0
    assert "given with --latency" in capsys.readouterr().out


def test_a_real_run_refits_beside_the_cache_and_counts_http_requests(capsys, candidates, tmp_path,
                                                                     monkeypatch):
    pytest.importorskip("httpx", reason="the HTTP backend needs prp[http]")
    pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http]")
    from http_fault_server import FakeJudge, FaultServer

    for name in ("PRP_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    judge = FakeJudge(REL, refuse_lists=400)  # single-prompt requests: more requests than inferences
    with FaultServer(judge) as server:
        common = ["--input", str(candidates), "--k", "3", "--batch-size", "4", "--judge", "openai",
                  "--model", "fake", "--base-url", server.url, "--cache-dir", str(cache)]
        before = _json(capsys, *common, "--dry-run")
        summary = _json(capsys, *common, "--output", str(tmp_path / "out.run"))
        text_code = main(["rerank", *common, "--output", str(tmp_path / "again.run")])
        text = capsys.readouterr().out
    source = before["latency"]["source"]
    assert source.startswith("default for openai/fake") and "guess" in source
    inferences = summary["cost"]["inferences"]
    sent = len(judge.requests) + len(judge.tokenizer_requests)  # judging and tokenizer requests
    assert inferences > 3 and inferences < summary["http_requests"] <= sent
    refit = summary["latency_refit"]
    assert refit is not None and f"{int(inferences)} timed inferences" in refit["source"]
    assert (cache / "latency.json").is_file()
    after = _json(capsys, *common, "--dry-run")
    assert "earlier runs" in after["latency"]["source"]
    terms = ("alpha", "beta", "gamma")
    assert [after["latency"][x] for x in terms] == [refit[x] for x in terms]
    assert text_code == 0 and "0 inferences (0 HTTP requests)" in text  # the rerun: all from the cache
    assert "latency model" in text and "earlier runs" in text


def test_unknown_oracle_option_lists_the_accepted_keys_before_loading(capsys, candidates, tmp_path):
    # the model path does not exist: had the backend been built, that would be the error
    code = main(["rerank", "--input", str(candidates), "--model", str(tmp_path / "none.gguf"),
                 "--judge", "llama.cpp:n_thread=2", "--output", str(tmp_path / "o.run")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown option n_thread" in err
    assert "accepted: chat, n_ctx, n_threads, passage_tokens, query_tokens, seed" in err


def test_help_is_plain_text_and_shows_every_default():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        text = sub.format_help()
        for markup in ("``", ":func:", ":mod:", ":class:", "**"):
            assert markup not in text, (name, markup)
        for action in sub._actions:
            if action.option_strings and not action.required and not isinstance(action, argparse._HelpAction):
                assert "default" in sub._get_formatter()._format_action(action), (name, action.option_strings)
