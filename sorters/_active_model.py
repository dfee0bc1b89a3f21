"""The numpy model behind :mod:`sorters.active`, imported on the first round of an active ranker
(``import sorters`` never loads numpy).

Same decisions as a full re-solve, cheaper:

* **Picks** are scored over the unasked pairs only (a flat list, in row-major order, so
  ``argmax`` breaks ties as over the full matrix), each with exactly the full matrix's
  elementwise arithmetic. A round first drops the pairs whose value cannot exceed ``settle``
  in this round: within a round the covariance only shrinks (rank-one downdates), so a pair's
  value is bounded by its value at the round's start with each candidate's chance of being in
  the top-k taken at its most (1 above the cut).
* **The noise level** (the plain least-squares fit's residual) comes from the comparison graph's
  Laplacian: its rank is ``n`` minus the number of connected components (kept by union-find as
  answers come), and the fit solves ``(L + P) theta = D'y`` (``P`` the projection on each
  component's constants, which makes it invertible without changing the solution) instead of a
  least-squares solve on the answers' design matrix.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
from threadpoolctl import ThreadpoolController

_blas: list | None = None  # the BLAS libraries loaded (threadpoolctl's controllers), found once


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread for the block (100x100 algebra: threads only cost here)."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    before = [lib.num_threads for lib in _blas]
    for lib in _blas:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, threads in zip(_blas, before, strict=True):
            lib.set_num_threads(threads)


class Model:
    """The Gaussian posterior over relevances (``mean``, ``cov``), in units of the judge's noise."""

    def __init__(self, n: int, prior: float, spread: float) -> None:
        self.n = n
        self.mu = -prior * np.log1p(np.arange(n))  # the prior, in units of the answers' RMS
        self.spread = spread
        self.lap = np.zeros((n, n))  # the comparison graph's Laplacian
        self.first = np.zeros(0, dtype=np.intp)  # the pairs asked, in order: (first[r], second[r])
        self.second = np.zeros(0, dtype=np.intp)
        self.y = np.zeros(0)
        self.dty = np.zeros(n)  # the design's transpose times the answers: D'y
        self.parent = list(range(n))  # union-find over the comparison graph
        self.components = n
        self.sigma = 1.0  # the noise level, in the answers' units
        self.asked = np.eye(n, dtype=bool)
        self.mean = self.mu.copy()
        self.cov = np.eye(n) * spread**2

    def _root(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def _fit(self, sigma: float) -> None:
        """The posterior mean for answers whose noise has standard deviation ``sigma``."""
        rhs = self.prior_prec * self.prior_mean
        np.add.at(rhs, self.first, self.y / sigma)
        np.add.at(rhs, self.second, -self.y / sigma)
        self.mean = self.cov @ rhs

    def _noise(self) -> tuple[float, float]:
        """The answers' noise level: the RMS residual of the plain least-squares fit over the
        degrees of freedom it leaves (the answers' RMS while fewer than 5 are left), never below
        a hundredth of the answers' RMS."""
        y = self.y
        rms = math.sqrt(float(y @ y) / len(y)) or 1.0
        dof = len(y) - (self.n - self.components)  # the design's rank: n minus the components
        if dof < 5:
            return rms, rms
        roots = np.array([self._root(a) for a in range(self.n)])
        same = roots[:, None] == roots[None, :]
        projection = same / same.sum(axis=1, keepdims=True)  # each component's mean
        theta = np.linalg.solve(self.lap + projection, self.dty)
        resid = y - (theta[self.first] - theta[self.second])
        return max(math.sqrt(float(resid @ resid) / dof), 0.01 * rms), rms

    def observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        if len(outcomes) != len(asks):
            raise ValueError(f"{len(outcomes)} outcomes for a round of {len(asks)} comparisons")
        with one_blas_thread():  # 100x100 algebra: threads only cost here
            self._observe(asks, outcomes)

    def _observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        answers = np.asarray(outcomes, dtype=float)
        for (i, j), y in zip(asks, answers.tolist(), strict=True):
            self.lap[i, i] += 1
            self.lap[j, j] += 1
            self.lap[i, j] -= 1
            self.lap[j, i] -= 1
            self.dty[i] += y
            self.dty[j] -= y
            self.asked[i, j] = self.asked[j, i] = True
            a, b = self._root(i), self._root(j)
            if a != b:
                self.parent[a] = b
                self.components -= 1
        self.y = np.concatenate([self.y, answers])
        self.first = np.concatenate([self.first, [i for i, _ in asks]])
        self.second = np.concatenate([self.second, [j for _, j in asks]])
        self.sigma, rms = self._noise()
        scale = rms / self.sigma  # the prior is in units of the answers' RMS; the model, the noise's
        self.prior_mean = self.mu * scale
        self.prior_prec = 1.0 / (self.spread * scale) ** 2
        self.cov = np.linalg.inv(self.lap + self.prior_prec * np.eye(self.n))
        self._fit(self.sigma)

    def skip(self, pairs: list[tuple[int, int]]) -> None:
        """Mark ``pairs`` asked without an answer (a question that got none is not asked again)."""
        for i, j in pairs:
            self.asked[i, j] = self.asked[j, i] = True

    def top(self, k: int) -> list[int]:
        return sorted(range(self.n), key=lambda c: (-self.mean[c], c))[:k]

    def pick(self, k: int, count: int, settle: float) -> list[tuple[int, int]]:
        """Up to ``count`` unasked pairs of highest value, each pick updating the covariance."""
        with one_blas_thread():
            return self._pick(k, count, settle)

    def _pick(self, k: int, count: int, settle: float) -> list[tuple[int, int]]:
        mean, cov, n = self.mean, self.cov.copy(), self.n
        order = np.argsort(-mean, kind="stable")
        cut = (mean[order[k - 1]] + mean[order[k]]) / 2 if k < n else -np.inf
        first, second = np.nonzero(np.triu(~self.asked, 1))  # the unasked pairs, row-major
        flat = cov.reshape(-1)  # a view: updated with cov
        at = first * n + second  # also each pair's row-major rank, which breaks ties
        gap = -np.abs(mean[first] - mean[second])
        value, inside, wrong, vdiff = _values(cov, flat, mean, cut, first, second, at, gap)
        # What each pair can be worth at most this round (the covariance only shrinks): its
        # value now, each candidate's chance of being in the top-k taken at its most.
        most = np.where(mean > cut, 1.0, inside)
        a, b = most[first], most[second]
        bound = (a + b - a * b) * wrong * vdiff / (vdiff + 1.0)
        keep = ~(bound < 0.5 * settle)  # never worth asking this round (NaN: kept)
        by = np.argsort(-bound[keep])  # best bound first (ties in any order: see below)
        first, second, at, gap, value = (x[keep][by] for x in (first, second, at, gap, value))
        bound = bound[keep][by] * (1 + 1e-9) + 1e-15  # rounding: a bound never below a value
        picks: list[tuple[int, int]] = []
        gone = np.zeros(len(at), dtype=bool)  # picked this round
        while len(picks) < len(at):
            if picks:  # the values that changed: those whose bound reaches the best value seen
                head = min(len(at), 32)
                value = _values(cov, flat, mean, cut, first[:head], second[:head], at[:head], gap[:head])[0]
                value[gone[:head]] = -np.inf
                reach = int(np.searchsorted(-bound, -value.max(), side="right"))
                if reach > head:
                    value = _values(cov, flat, mean, cut, first[:reach], second[:reach], at[:reach],
                                    gap[:reach])[0]
                    value[gone[:reach]] = -np.inf
            top = value.max()
            if not top > settle:
                break
            ties = np.flatnonzero(value == top)
            best = int(ties[np.argmin(at[ties])])  # the first in row-major order, as argmax would
            i, j = int(first[best]), int(second[best])
            picks.append((i, j))
            if len(picks) == count:
                break
            gone[best] = True
            u = cov[:, i] - cov[:, j]
            cov -= np.outer(u, u) / (1.0 + u[i] - u[j])
        return picks


def _values(cov: np.ndarray, flat: np.ndarray, mean: np.ndarray, cut: float, first: np.ndarray,
            second: np.ndarray, at: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each pair's value (with the candidates' chance of being in the top-k, the chance the
    estimate orders the pair wrongly and its difference's variance), elementwise exactly as over
    the full matrix."""
    var = np.diag(cov)
    inside = _phi((mean - cut) / np.sqrt(var))
    a, b = inside[first], inside[second]
    either = a + b - a * b
    vdiff = np.maximum(var[first] + var[second] - 2 * flat[at], 1e-12)
    wrong = _phi(gap / np.sqrt(vdiff))
    return either * wrong * vdiff / (vdiff + 1.0), inside, wrong, vdiff


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise, by its logistic approximation (error < 0.01)."""
    return 1.0 / (1.0 + np.exp(-1.702 * np.clip(x, -40, 40)))
