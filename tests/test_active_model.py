"""The active ranker's model (``sorters._active_model``) against the full re-solve it replaced
(``tests/active_reference.py``): a round's picks are the reference's greedy picks, pair for pair,
on any means and covariance (exact ties, nearly equal values, a working set that must grow, a
large one); its inverses and updates agree with a plain inverse to rounding; and on more random
configurations than ``tests/test_active_same.py``'s fixed cases, the same rounds and ranking."""

from __future__ import annotations

import random

import active_reference
import numpy as np
import pytest
from test_active_same import judge, record

from sorters import active
from sorters._active_model import Model, _inverse, _woodbury


def _state(rng: np.random.Generator, n: int, kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, a covariance and the pairs asked, of one of four kinds."""
    if kind == 0:  # any covariance
        b = rng.standard_normal((n, 2 * n))
        cov = b @ b.T / (2 * n) * rng.uniform(0.01, 10)
        mean = rng.standard_normal(n) * rng.uniform(0.1, 5)
    elif kind == 1:  # exchangeable: every value ties
        cov, mean = np.eye(n) * rng.uniform(0.1, 3), np.zeros(n)
    elif kind == 2:  # the model's own: a ridge on a random comparison graph, first-stage means
        lap = np.zeros((n, n))
        for _ in range(int(rng.integers(0, 3 * n))):
            i, j = rng.choice(n, 2, replace=False)
            lap[i, i] += 1
            lap[j, j] += 1
            lap[i, j] -= 1
            lap[j, i] -= 1
        cov = np.linalg.inv(lap + rng.uniform(1e-4, 2) * np.eye(n))
        mean = -0.3 * np.log1p(np.arange(n)) * rng.uniform(0, 50)
    else:  # every pair compared, a weak prior: nearly equal values (a large working set)
        lap = np.full((n, n), -1.0)
        np.fill_diagonal(lap, n - 1.0)
        cov = np.linalg.inv(lap + 1e-4 * np.eye(n))
        mean = rng.standard_normal(n) * 1e-3
    asked = np.eye(n, dtype=bool)
    share = rng.uniform(0, 0.9)
    for i in range(n):
        for j in range(i + 1, n):
            if rng.random() < share:
                asked[i, j] = asked[j, i] = True
    return mean, cov, asked


@pytest.mark.parametrize("seed", range(8))
def test_picks_are_the_reference_greedy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n = int(rng.choice([2, 3, 5, 12, 30, 60, 100]))
        k, count = int(rng.integers(1, n + 1)), int(rng.integers(1, 15))
        settle = float(rng.choice([0.0, 0.002, 0.02, 0.1]))
        mean, cov, asked = _state(rng, n, int(rng.integers(0, 4)))
        reference = active_reference._Model(n, 0.3, 1.0)
        reference.mean, reference.cov, reference.asked = mean.copy(), cov.copy(), asked.copy()
        model = Model(n, 0.3, 1.0)
        model.mean, model.cov, model.asked = mean.copy(), cov.copy(), asked.copy()
        model.skip([])  # (drops the asked pairs from its index)
        assert model.pick(k, count, settle) == reference._pick(k, count, settle), (n, k, count, settle)


def test_inverse_and_updates_agree_with_a_plain_inverse():
    rng = np.random.default_rng(0)
    for n in (5, 63, 64, 100, 131):
        b = rng.standard_normal((n, 3 * n))
        a = b @ b.T / (3 * n) + 0.1 * np.eye(n)
        x = _inverse(a)
        assert np.allclose(x, np.linalg.inv(a), rtol=1e-10, atol=1e-12 * np.abs(x).max())
        first = rng.choice(n, 7)
        second = (first + 1 + rng.integers(0, n - 1, 7)) % n
        for i, j in zip(first, second, strict=True):
            e = np.zeros(n)
            e[i], e[j] = 1.0, -1.0
            a += np.outer(e, e)
        _woodbury(x, first, second)
        assert np.allclose(x, np.linalg.inv(a), rtol=1e-10, atol=1e-12 * np.abs(x).max())


def _configurations(count: int):
    rng = random.Random(20240611)
    for seed in range(count):
        n = rng.choice([5, 10, 20, 40, 60])
        options = {"budget": rng.choice([None, rng.randint(1, 300)]), "round_size": rng.randint(1, 12)}
        if rng.random() < 0.3:
            options["prior"] = rng.choice([0.0, 0.3, 1.0])
        if rng.random() < 0.3:
            options["settle"] = rng.choice([0.0, 0.002, 0.02])
        if rng.random() < 0.2:
            options["spread"] = rng.choice([0.3, 1.0, 3.0])
        yield seed, n, rng.randint(1, n), options, rng.choice([0.0, 0.3, 1.0, 2.0]), rng.random() < 0.3


@pytest.mark.parametrize("seed, n, k, options, noise, signs", list(_configurations(24)))
def test_random_configurations_take_the_reference_decisions(seed, n, k, options, noise, signs):
    new = record(active(n, k, **options), judge(100 + seed, n, noise, signs))
    old = record(active_reference.active(n, k, **options), judge(100 + seed, n, noise, signs))
    assert new == old


@pytest.mark.parametrize("large", [0, 10**9])
@pytest.mark.parametrize("seed", range(4))
def test_both_ways_of_valuing_a_working_set_take_the_reference_greedy(monkeypatch, seed, large):
    """Every working set valued whole at each pick, or every one through its bounds (the way of
    the largest sets): the reference's picks either way."""
    import sorters._active_model as model_module
    monkeypatch.setattr(model_module, "_LARGE", large)
    rng = np.random.default_rng(100 + seed)
    for _ in range(20):
        n = int(rng.choice([3, 12, 40, 100]))
        k, count = int(rng.integers(1, n + 1)), int(rng.integers(2, 15))
        settle = float(rng.choice([0.0, 0.002, 0.02]))
        mean, cov, asked = _state(rng, n, int(rng.integers(0, 4)))
        reference = active_reference._Model(n, 0.3, 1.0)
        reference.mean, reference.cov, reference.asked = mean.copy(), cov.copy(), asked.copy()
        model = Model(n, 0.3, 1.0)
        model.mean, model.cov, model.asked = mean.copy(), cov.copy(), asked.copy()
        model.skip([])
        assert model.pick(k, count, settle) == reference._pick(k, count, settle), (n, k, count, settle)


def test_held_rows_are_the_reference_downdates_to_the_bit():
    """The rows and columns a round holds (taken at once, or grown as its working set grows) are
    the whole covariance downdated by the reference, entry for entry."""
    from sorters._active_model import _Working
    rng = np.random.default_rng(5)
    for n in (6, 30, 100):
        mean, cov, _ = _state(rng, n, 2)
        full = cov.copy()
        picks: list = []
        work = _Working(cov, mean, picks)
        for _ in range(6):
            i, j = sorted(int(x) for x in rng.choice(n, 2, replace=False))
            fe, se = np.sort(rng.choice(n, 4)), np.sort(rng.choice(n, 4))
            work._cover(np.append(fe, i), np.append(se, j))  # (held rows grow: the union)
            picks.append((i, j))
            u = full[:, i] - full[:, j]  # the reference's downdate of the whole
            full -= np.outer(u, u) / (1.0 + u[i] - u[j])
            work._downdate(int(work.loc[i]), int(work.loc[j]))
            held = np.flatnonzero(work.mark)
            assert np.array_equal(work.sub, full[np.ix_(held, held)])


def _larger_configurations(count: int):
    rng = random.Random(20261206)
    for seed in range(count):
        n = rng.choice([70, 100])
        options = {"budget": rng.randint(50, 300), "round_size": rng.choice([3, 10, 10, 16])}
        if rng.random() < 0.3:
            options["prior"] = rng.choice([0.0, 1.0])
        if rng.random() < 0.3:
            options["settle"] = rng.choice([0.0, 0.02])
        noise, signs = rng.choice([0.0, 0.5, 1.0, 2.0]), rng.random() < 0.5
        yield seed, n, rng.choice([1, 5, 10, 30]), options, noise, signs


@pytest.mark.parametrize("seed, n, k, options, noise, signs", list(_larger_configurations(12)))
def test_larger_random_configurations_take_the_reference_decisions(seed, n, k, options, noise, signs):
    new = record(active(n, k, **options), judge(500 + seed, n, noise, signs))
    old = record(active_reference.active(n, k, **options), judge(500 + seed, n, noise, signs))
    assert new == old
