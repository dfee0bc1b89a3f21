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


def test_the_slot_bias_of_set_answers_is_recovered(dl19):
    """Set answers drawn from a noisy judge of known slot bias: the fit finds it (the last slot
    is the reference, 0), and a judge built from the fitted spec answers sets alike."""
    from prp.oracles.fit import fit_slot_bias, sample_sets, set_answers

    requests, qrels = dl19
    truth = NoisyOracle(qrels, scale=0.8, bias=1.0, noise=0.9, seed=2, slot_bias=(1.2, 0.5, 0.2, 0.0))
    asked = sample_sets(requests, qrels, 3000, 4, "set-v1", seed=0)
    assert asked == sample_sets(requests, qrels, 3000, 4, "set-v1", seed=0)  # seeded
    cache = MemoryCache()
    answers = set_answers(asked, asyncio.run(judge_all(truth, asked, 64, cache)))
    assert len(answers) == 3000 and len(cache) == len({(p.qid, p.ids) for p in asked})
    fit = fit_slot_bias(answers, qrels, scale=0.8, noise=0.9)
    assert fit.slot_bias[3] == 0.0
    assert fit.slot_bias[:3] == pytest.approx((1.2, 0.5, 0.2), abs=0.15)
    assert fit.expected_first_slot_share == pytest.approx(fit.first_slot_share, abs=0.01)
    joint = fit_slot_bias(answers, qrels, scale=0.8)  # set_noise fitted too
    assert joint.set_noise == pytest.approx(0.9, abs=0.1)
    assert joint.slot_bias == pytest.approx(fit.slot_bias, abs=0.15)
    sharp = NoisyOracle(qrels, scale=0.8, bias=1.0, noise=0.9, seed=2, slot_bias=(1.2, 0.5, 0.2, 0.0),
                        set_noise=0.3)
    sharp_answers = set_answers(asked, asyncio.run(judge_all(sharp, asked, 64, None)))
    sharper = fit_slot_bias(sharp_answers, qrels, scale=0.8)
    assert sharper.set_noise == pytest.approx(0.3, abs=0.05)
    fair = NoisyOracle(qrels, scale=0.8, bias=1.0, noise=0.9, seed=2, slot_bias=(0, 0, 0, 0))
    unbiased = fit_slot_bias(set_answers(asked, asyncio.run(judge_all(fair, asked, 64, None))), qrels,
                             scale=0.8, noise=0.9)
    assert max(map(abs, unbiased.slot_bias)) < 0.15


def test_calibrate_oracle_fits_the_slot_bias_asking_sets_or_from_answers(dl19_dir, capsys, tmp_path):
    import json

    from prp.cli import main
    judge = "noisy:scale=0.8,bias=1,noise=0.9,seed=4,slot_bias=1.5/0.6/0.3/0"
    base = ["calibrate-oracle", "--data", str(dl19_dir), "--pairs", "400", "--judge", judge,
            "--qrels", str(dl19_dir / "qrels.txt"), "--format", "json"]
    assert main([*base, "--sets", "2000"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sets"]["answers"] == 2000
    assert report["sets"]["slot_bias"] == pytest.approx([1.5, 0.6, 0.3, 0.0], abs=0.25)
    assert report["sets"]["set_noise"] == pytest.approx(0.9, abs=0.15)  # the judge's noise, sets included
    assert report["judge"].endswith(",slot_bias=" + "/".join(f"{b:.4g}" for b in report["sets"]["slot_bias"])
                                    + f",set_noise={report['sets']['set_noise']:.4g}")

    recorded = tmp_path / "answers.jsonl"
    rows = [{"qid": "1037798", "shape": "set", "ids": ["a", "b", "c"], "order": [w], "probs": None,
             "parsed": True, "repaired": False} for w in [0] * 5 + [2] * 5]
    rows.append({"qid": "1037798", "shape": "list", "ids": ["a", "b"], "order": [1, 0]})
    recorded.write_text("\n".join(map(json.dumps, rows)) + "\n")
    assert main([*base, "--set-answers", str(recorded)]) == 0
    out, err = capsys.readouterr()
    assert "set_noise kept at the pairs' noise" in err  # every passage shown is unjudged: grade 0
    bias = json.loads(out)["sets"]["slot_bias"]
    # unjudged passages (grade 0): slot 0 won as often as slot 2, slot 1 never
    assert bias[0] == pytest.approx(0.0, abs=1e-6) and bias[1] < -5 and bias[2] == 0.0

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"shape": "set", "ids": ["a"], "order": [3], "qid": "q"}\n')
    assert main([*base, "--set-answers", str(bad)]) == 2
    assert f"{bad}:1: not a set answer" in capsys.readouterr().err
