"""Fitting the noisy simulated judge recovers the parameters of a judge of known noise."""

from __future__ import annotations

import asyncio

import pytest

from prp import NoisyOracle, PerfectOracle
from prp.cache import MemoryCache
from prp.data import load_dataset
from prp.judging import judge_all
from prp.oracles.fit import both_orders, fit_noisy, sample_pairs


@pytest.fixture(scope="module")
def dl19(dl19_dir):
    return load_dataset(dl19_dir, depth=100)


def test_sampling_is_stratified_and_seeded(dl19):
    requests, qrels = dl19
    pairs = sample_pairs(requests, qrels, 40, seed=1)
    assert len(pairs) == 40 and pairs == sample_pairs(requests, qrels, 40, seed=1)
    gaps = [abs(qrels[r.qid][r.doc_ids[i]] - qrels[r.qid][r.doc_ids[j]]) for r, i, j in pairs]
    assert all(gaps.count(g) == 10 for g in range(4))


def test_fit_recovers_a_known_judge(dl19):
    requests, qrels = dl19
    prompts = both_orders(sample_pairs(requests, qrels, 400, seed=0))
    truth = NoisyOracle(qrels, scale=2.0, bias=1.5, noise=0.8, seed=3)
    cache = MemoryCache()
    judgments = asyncio.run(judge_all(truth, prompts, 16, cache))
    fit, samples = fit_noisy(prompts, judgments, qrels)
    assert fit.scale == pytest.approx(2.0, abs=0.1) and fit.bias == pytest.approx(1.5, abs=0.1)
    assert fit.noise == pytest.approx(0.8, abs=0.1) and fit.samples == len(samples) == 800
    assert fit.spec().startswith("noisy:scale=")
    assert len(cache) == 800  # a second fit pays nothing
    perfect, _ = fit_noisy(prompts, asyncio.run(judge_all(PerfectOracle(qrels), prompts, 16, None)), qrels)
    assert perfect.pair_accuracy == 1.0 and perfect.noise == pytest.approx(0, abs=1e-9)


def test_calibrate_oracle_command(dl19_dir, capsys):
    import json

    from prp.cli import main
    code = main(["calibrate-oracle", "--data", str(dl19_dir), "--pairs", "120",
                 "--judge", "noisy:scale=2,bias=1,noise=0.5,seed=4", "--qrels", str(dl19_dir / "qrels.txt"),
                 "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scale"] == pytest.approx(2, abs=0.2) and report["bias"] == pytest.approx(1, abs=0.2)
    assert report["judge"].startswith("noisy:scale=") and report["pairs"] == 120
