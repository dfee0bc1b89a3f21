"""A bare noisy judge is noisy: the fit to qwen2.5-coder-1.5b, in the library, the spec and every
command; a spec that leaves it with no bias and no noise is an error, not a perfect judge."""

from __future__ import annotations

import json

import pytest

from prp import NoisyOracle, PerfectOracle, Reranker
from prp.cli import build_parser, main
from prp.oracles import make_judge
from prp.oracles.judges import describe
from prp.oracles.simulated import FITTED_QWEN_1_5B

FITTED = (0.2377, 1.523, 0.7707)
GRADES = {f"d{i}": i % 4 for i in range(40)}
QRELS = {"q": GRADES}


def params(judge):
    return judge.scale, judge.bias, judge.noise, judge.seed


def test_bare_noisy_is_the_fit_and_the_fit_file_says_so():
    assert params(NoisyOracle(QRELS)) == (*FITTED, 0)
    assert params(make_judge("noisy", qrels=QRELS)) == (*FITTED, 0)
    assert params(make_judge("noisy:seed=3", qrels=QRELS)) == (*FITTED, 3)  # seed does not count
    assert tuple(FITTED_QWEN_1_5B.values()) == FITTED
    assert describe("noisy") == "noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0"


def test_bare_noisy_does_not_rank_like_perfect():
    ids = sorted(GRADES, key=lambda d: -int(d[1:]))  # an arbitrary first stage
    docs = [f"text {d}" for d in ids]
    perfect = Reranker(PerfectOracle(QRELS), k=10).rank("q", docs, ids, "q").doc_ids[:10]
    noisy = Reranker(NoisyOracle(QRELS), k=10).rank("q", docs, ids, "q").doc_ids[:10]
    assert [GRADES[d] for d in perfect] == [3] * 10
    assert noisy != perfect and sum(GRADES[d] for d in noisy) < 30


@pytest.mark.parametrize("options, left", [({"scale": 2.0}, "bias and noise left out are 0"),
                                           ({"bias": 0.0}, "noise left out is 0"),
                                           ({"noise": 0.0, "seed": 1}, "bias left out is 0")])
def test_a_judge_left_with_no_bias_and_no_noise_is_an_error(options, left):
    with pytest.raises(ValueError, match=left) as info:
        NoisyOracle(QRELS, **options)
    assert "ranks exactly like the perfect judge" in str(info.value)


def test_explicit_options_keep_their_meaning():
    assert params(NoisyOracle(QRELS, bias=1.5, noise=1.0)) == (1.0, 1.5, 1.0, 0)
    assert params(NoisyOracle(QRELS, bias=0, noise=0)) == (1.0, 0, 0, 0)  # asked for: accepted
    assert params(make_judge("noisy:scale=2,noise=0.5", qrels=QRELS)) == (2, 0.0, 0.5, 0)


def test_cli_noisy_reports_name_the_parameters(dl19_dir, capsys):
    assert main(["simulate", "--data", str(dl19_dir), "--queries", "2", "--depth", "20", "--sorters",
                 "quicksort", "--batch-sizes", "8", "--judge", "noisy", "--format", "jsonl",
                 "--cache", "on"]) == 0
    assert json.loads(capsys.readouterr().out)["judge"] == "noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0"
    assert main(["simulate", "--data", str(dl19_dir), "--queries", "2", "--judge", "noisy:scale=3"]) == 2
    assert "bias and noise left out are 0" in capsys.readouterr().err


def test_prp_plan_takes_a_bare_noisy(capsys):
    assert main(["plan", "--n", "20", "--k", "5", "--batch-size", "4", "--trials", "1", "--sorters",
                 "quicksort,heapsort", "--judge", "noisy", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["choice"] in ("quicksort", "heapsort")


@pytest.mark.parametrize("command", ["rerank", "bench", "simulate", "serve", "calibrate-oracle"])
def test_judge_help_says_what_a_bare_noisy_is(command):
    commands = build_parser()._subparsers._group_actions[0].choices
    text = commands[command].format_help()
    assert "bare noisy is fitted to qwen2.5-coder-1.5b" in " ".join(text.split())
