"""Latency models per judge: defaults from this project's measurements, refits stored beside the
cache, and the order of choice."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cost.calibrate import fit, load_records
from cost.model import DEFAULT_LATENCY, LatencyModel
from prp.latency import (
    KEEP,
    QWEN_0_5B_CPU,
    QWEN_1_5B_CPU,
    default_for,
    record_run,
    refit,
    resolve,
    stored,
)

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def test_the_1_5b_default_is_the_fit_of_its_measured_run():
    stored_fit = json.loads((RESULTS / "demo-idle-latency.json").read_text())
    judge = stored_fit["judges"]["llama.cpp/qwen2.5-coder-1.5b"]
    records = [{"prompts": p, "prompt_tokens": t, "completion_tokens": 0, "seconds": s}
               for p, t, s in judge["records"]]
    m = QWEN_1_5B_CPU
    predicted = sum(m.batch_seconds(r["prompts"], r["prompt_tokens"]) for r in records)
    assert predicted == pytest.approx(sum(r["seconds"] for r in records), rel=0.02)
    assert (m.alpha, m.gamma) == pytest.approx((judge["alpha"], judge["gamma"]), rel=0.01)


def test_the_0_5b_default_is_the_calibration_fit():
    fitted = fit(load_records(RESULTS / "llama-qwen0.5b-latency.json"))
    for name in ("alpha", "beta", "gamma"):
        assert getattr(QWEN_0_5B_CPU, name) == pytest.approx(getattr(fitted, name), rel=0.005)


def test_defaults_per_backend_say_where_they_come_from():
    llama = default_for("llama.cpp", "qwen2.5-coder-1.5b")
    assert llama.model == QWEN_1_5B_CPU and "demo-idle-latency.json" in llama.source
    assert default_for("llama.cpp", None).model == QWEN_1_5B_CPU  # the default packaged judge
    assert default_for("llama.cpp", "qwen2.5-coder-0.5b").model == QWEN_0_5B_CPU
    assert "guess" in default_for("llama.cpp", "/models/other.gguf").source
    http = default_for("openai", "m")
    assert http.model == DEFAULT_LATENCY and "guess" in http.source
    assert "guess" in default_for("transformers", "t5").source
    assert "illustrative" in default_for("perfect").source


def _records(model: LatencyModel, sizes: list[int], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for prompts in sizes:
        tokens = sum(rng.randint(200, 300) for _ in range(prompts))
        out.append({"prompts": prompts, "prompt_tokens": tokens,
                    "seconds": model.batch_seconds(prompts, tokens)})
    return out


def test_a_run_is_refitted_stored_and_used_next(tmp_path):
    truth = LatencyModel(0.5, 0.2, 0.01)
    choice = record_run(tmp_path, "llama.cpp/x", _records(truth, [8, 8, 4, 2, 6, 1]))
    for name in ("alpha", "beta", "gamma"):
        assert getattr(choice.model, name) == pytest.approx(getattr(truth, name), abs=1e-6)
    assert "6 timed inferences" in choice.source and (tmp_path / "latency.json").is_file()
    again = stored(tmp_path, "llama.cpp/x")
    assert again.model == choice.model and "earlier runs" in again.source
    assert stored(tmp_path, "llama.cpp/other") is None
    default = default_for("llama.cpp", "x")
    assert resolve(None, tmp_path, "llama.cpp/x", default) == again
    assert resolve(None, tmp_path, "llama.cpp/other", default) == default
    assert resolve(None, None, "llama.cpp/x", default) == default
    assert resolve(LatencyModel(1, 2, 3), tmp_path, "llama.cpp/x", default).source == "given with --latency"


def test_records_accumulate_over_runs_and_are_bounded(tmp_path):
    truth = LatencyModel(0.0, 0.0, 0.02)
    record_run(tmp_path, "j", _records(truth, [8] * 5))
    second = record_run(tmp_path, "j", _records(truth, [8] * 4, seed=1))
    assert "9 timed inferences" in second.source
    many = record_run(tmp_path, "j", _records(truth, [3] * (KEEP + 10), seed=2))
    assert f"{KEEP} timed inferences" in many.source


def test_one_batch_size_gives_a_rate_per_token():
    records = [{"prompts": 8, "prompt_tokens": 2000, "seconds": 20.0},
               {"prompts": 8, "prompt_tokens": 2200, "seconds": 22.0}]
    assert refit(records) == LatencyModel(0.0, 0.0, 42.0 / 4200)
    assert refit([{"prompts": 4, "prompt_tokens": 0, "seconds": 2.0}]) == LatencyModel(0.0, 0.5, 0.0)
    assert refit([]) is None


def test_an_unreadable_file_warns_and_falls_back(tmp_path):
    (tmp_path / "latency.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match="unreadable latency fits"):
        assert stored(tmp_path, "j") is None
    with pytest.warns(RuntimeWarning):
        choice = record_run(tmp_path, "j", _records(LatencyModel(0, 0, 0.01), [2, 4, 8]))
    assert stored(tmp_path, "j").model == choice.model  # the next run rewrote it whole
