"""Fitting the latency model: recovers known parameters, stays non-negative, checks held-out runs."""

from __future__ import annotations

import json
import random

import pytest

from cost.calibrate import check, fit
from cost.model import LatencyModel
from prp import ScoresOracle
from prp.cli import main
from prp.engine import SyncEngine
from prp.reranker import Reranker


def synthetic(model: LatencyModel, n: int = 40, noise: float = 0.0, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompts = rng.choice([1, 2, 4, 8, 16])
        tokens = prompts * rng.randint(200, 300)
        seconds = model.batch_seconds(prompts, tokens) * (1 + rng.gauss(0, noise))
        out.append({"prompts": prompts, "prompt_tokens": tokens, "seconds": seconds})
    return out


def test_fit_recovers_known_parameters():
    truth = LatencyModel(0.3, 0.05, 0.004)
    fitted = fit(synthetic(truth))
    assert (fitted.alpha, fitted.beta, fitted.gamma) == pytest.approx((0.3, 0.05, 0.004), rel=1e-6)


def test_fit_never_goes_negative():
    # Seconds that fall with batch size would need a negative beta: the fit drops that term.
    records = [{"prompts": p, "prompt_tokens": 10 * p, "seconds": 2.0 - 0.01 * p} for p in (1, 2, 4, 8)]
    fitted = fit(records)
    assert min(fitted.alpha, fitted.beta, fitted.gamma) >= 0


def test_check_on_held_out_runs():
    truth = LatencyModel(0.2, 0.0, 0.01)
    fitted = fit(synthetic(truth, noise=0.02, seed=1))
    report = check(fitted, synthetic(truth, noise=0.02, seed=2))
    assert abs(report["total_error_pct"]) < 3 and report["r2"] > 0.95
    with pytest.raises(ValueError, match="at least 3"):
        fit(synthetic(truth, n=2))


def test_the_inference_hook_records_each_inference():
    records: list[dict] = []
    reranker = Reranker(ScoresOracle({"a": 1, "b": 2, "c": 3}), k=3, batch_size=2, cache=False)
    with SyncEngine(reranker, on_inference=lambda inference: records.append(inference.record())) as engine:
        result = engine.rank("query", ["text a", "text b", "text c"], ["a", "b", "c"])
    assert len(records) == result.cost.inferences
    assert sum(r["prompts"] for r in records) == result.cost.prompts
    assert all(r["prompt_tokens"] > 0 and r["seconds"] >= 0 for r in records)


def test_calibrate_command(tmp_path, capsys):
    truth = LatencyModel(0.5, 0.1, 0.002)
    fit_file, hold_file = tmp_path / "fit.jsonl", tmp_path / "hold.json"
    fit_file.write_text("\n".join(json.dumps(r) for r in synthetic(truth)))
    hold_file.write_text(json.dumps(synthetic(truth, seed=9)))
    assert main(["calibrate", str(fit_file), "--holdout", str(hold_file), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["alpha"] == pytest.approx(0.5) and report["latency"].startswith("0.5,")
    assert report["holdout"][str(hold_file)]["total_error_pct"] == pytest.approx(0, abs=1e-6)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"prompts": 1}]))
    assert main(["calibrate", str(bad)]) == 2


def test_fit_recovers_a_decode_term_from_runs_whose_output_tokens_vary():
    """List answers take several output tokens: with those runs, delta (seconds per output token)
    is fitted apart from beta; pair-only runs (one output token a prompt) keep delta at 0."""
    truth = LatencyModel(0.3, 0.05, 0.004, 0.02)
    rng = random.Random(3)
    records = []
    for _ in range(40):
        prompts = rng.choice([1, 2, 4, 8])
        tokens, output = prompts * rng.randint(200, 2000), prompts * rng.choice([1, 40, 80])
        records.append({"prompts": prompts, "prompt_tokens": tokens, "completion_tokens": output,
                        "seconds": truth.batch_seconds(prompts, tokens, output)})
    fitted = fit(records)
    assert (fitted.alpha, fitted.beta, fitted.gamma, fitted.delta) == pytest.approx((0.3, 0.05, 0.004, 0.02))
    assert check(fitted, records)["mean_abs_error_pct"] < 1e-6
    assert fit(synthetic(LatencyModel(0.3, 0.05, 0.004))).delta == 0.0  # no output tokens recorded
    assert LatencyModel.parse(str(truth)) == truth and str(LatencyModel(1, 0, 0)) == "1,0,0"
    with pytest.raises(ValueError, match="alpha,beta,gamma,delta"):
        LatencyModel.parse("1,2,3,4,5")


def test_predicted_seconds_price_each_output_token():
    """With t = 1 s per output token and nothing else, a query's predicted seconds are its output
    tokens: a listwise window's answer is 4 tokens a passage (cost.model.estimate_answer_tokens)."""
    from prp import PerfectOracle

    ids = [f"d{i}" for i in range(10)]
    judge = PerfectOracle({"q": {d: i % 3 for i, d in enumerate(ids)}})
    result = Reranker(judge, sorter="listwise:window=10,step=5", k=5, batch_size=4,
                      latency=LatencyModel(0, 0, 0, 1.0)).rank("q", [f"text {d}" for d in ids], ids, qid="q")
    assert result.cost.output_tokens == 4 * 10 and result.cost.predicted_seconds == 40.0
