"""The issue's acceptance figures on full DL19 (k=10, depth 100) with simulated judges."""

from __future__ import annotations

import pytest

from cost.model import DEFAULT_LATENCY
from prp.cli.simulate import simulate_one
from prp.data import load_dataset
from prp.evaluate import mean_measure
from prp.grid import Cell

SORTERS = ["heapsort", "bubblesort", "quicksort", "mergesort", "allpair"]


@pytest.fixture(scope="module")
def dl19(dl19_dir):
    return load_dataset(dl19_dir, depth=100)


def row(dl19, sorter, batch_size, in_flight=1, cache=True, oracle="perfect", aggregate="auto"):
    requests, qrels = dl19
    return simulate_one(requests, qrels, Cell(sorter, batch_size, cache=cache), judge=oracle, k=10,
                        aggregate=aggregate, in_flight=in_flight, latency=DEFAULT_LATENCY)


def test_reference_figures(dl19):
    requests, qrels = dl19
    bm25 = mean_measure("nDCG@10", {r.qid: r.doc_ids for r in requests}, qrels)
    assert bm25 == pytest.approx(0.5058, abs=1e-4)


@pytest.mark.parametrize("sorter", SORTERS)
def test_every_sorter_reaches_the_best_reordering(dl19, sorter):
    assert row(dl19, sorter, 64, in_flight=None)["ndcg@10"] == pytest.approx(0.892, abs=0.005)


def test_quicksort_batched_beats_heapsort(dl19):
    heap = row(dl19, "heapsort", 2)["inferences"]
    quick = row(dl19, "quicksort", 8)["inferences"]
    assert quick <= 0.4 * heap


def test_all_in_flight_b64_needs_few_inferences(dl19):
    assert row(dl19, "quicksort", 64, in_flight=None)["inferences"] <= 12


def test_noisy_judge_margin_beats_consistent(dl19):
    noisy = "noisy:bias=1.5,noise=1.0,seed=0"
    margin = row(dl19, "quicksort", 64, in_flight=None, oracle=noisy, aggregate="margin")
    consistent = row(dl19, "quicksort", 64, in_flight=None, oracle=noisy, aggregate="consistent")
    assert margin["ndcg@10"] > consistent["ndcg@10"]
