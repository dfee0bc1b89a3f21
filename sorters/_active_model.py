"""The numpy model behind :mod:`sorters.active` (v1 draft)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
from threadpoolctl import ThreadpoolController

_blas: list | None = None  # the BLAS libraries loaded (threadpoolctl's controllers), found once

_SLOPE = np.float64(-1.702)  # the logistic approximation of the normal CDF: phi(x) = 1 / (1 + exp(-1.702 x))


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread for the block (100x100 algebra: threads only cost here)."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    before = [lib.num_threads for lib in _blas]
    for lib in _blas:
        if lib.num_threads != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, threads in zip(_blas, before, strict=True):
            if threads != 1:
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
        self._projection: np.ndarray | None = None  # each component's mean, for ``components``
        self._projection_for = -1
        self.sigma = 1.0  # the noise level, in the answers' units
        self.asked = np.eye(n, dtype=bool)
        self.mean = self.mu.copy()
        self.cov = np.eye(n) * spread**2
        f, s = np.triu_indices(n, 1)
        self._f, self._s, self._at = f, s, f * n + s  # the unasked pairs, row-major

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
        y = self.y
        rms = math.sqrt(float(y @ y) / len(y)) or 1.0
        dof = len(y) - (self.n - self.components)
        if dof < 5:
            return rms, rms
        if self._projection_for != self.components:
            roots = np.array([self._root(a) for a in range(self.n)])
            same = roots[:, None] == roots[None, :]
            self._projection = same / same.sum(axis=1, keepdims=True)
            self._projection_for = self.components
        theta = np.linalg.solve(self.lap + self._projection, self.dty)
        resid = y - (theta[self.first] - theta[self.second])
        return max(math.sqrt(float(resid @ resid) / dof), 0.01 * rms), rms

    def observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        if len(outcomes) != len(asks):
            raise ValueError(f"{len(outcomes)} outcomes for a round of {len(asks)} comparisons")
        with one_blas_thread():
            self._observe(asks, outcomes)

    def _observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        answers = np.asarray(outcomes, dtype=float)
        lap, dty, asked = self.lap, self.dty, self.asked
        for (i, j), y in zip(asks, answers.tolist(), strict=True):
            lap[i, i] += 1
            lap[j, j] += 1
            lap[i, j] -= 1
            lap[j, i] -= 1
            dty[i] += y
            dty[j] -= y
            asked[i, j] = asked[j, i] = True
            a, b = self._root(i), self._root(j)
            if a != b:
                self.parent[a] = b
                self.components -= 1
        self._drop_asked()
        self.y = np.concatenate([self.y, answers])
        self.first = np.concatenate([self.first, [i for i, _ in asks]])
        self.second = np.concatenate([self.second, [j for _, j in asks]])
        self.sigma, rms = self._noise()
        scale = rms / self.sigma
        self.prior_mean = self.mu * scale
        self.prior_prec = 1.0 / (self.spread * scale) ** 2
        self.cov = np.linalg.inv(self.lap + self.prior_prec * np.eye(self.n))
        self._fit(self.sigma)

    def _drop_asked(self) -> None:
        keep = ~self.asked.reshape(-1)[self._at]
        self._f, self._s, self._at = self._f[keep], self._s[keep], self._at[keep]

    def skip(self, pairs: list[tuple[int, int]]) -> None:
        for i, j in pairs:
            self.asked[i, j] = self.asked[j, i] = True
        self._drop_asked()

    def top(self, k: int) -> list[int]:
        return sorted(range(self.n), key=lambda c: (-self.mean[c], c))[:k]

    def pick(self, k: int, count: int, settle: float) -> list[tuple[int, int]]:
        return self._pick(k, count, settle)

    def _pick(self, k: int, count: int, settle: float) -> list[tuple[int, int]]:
        mean, n = self.mean, self.n
        f, s, at = self._f, self._s, self._at
        if not len(at):
            return []
        if k < n:
            part = np.partition(-mean, (k - 1, k))
            cut = (-part[k - 1] + -part[k]) / 2
        else:
            cut = -np.inf
        cov = self.cov.copy()
        flat = cov.reshape(-1)
        above = mean - cut
        var = np.diag(cov)
        inside = _phi(above / np.sqrt(var))
        gap = -np.abs(mean[f] - mean[s])
        a, b = inside[f], inside[s]
        vd = np.maximum(var[f] + var[s] - 2 * flat[at], 1e-12)
        wrong = _phi_neg(gap / np.sqrt(vd))
        value = (a + b - a * b) * wrong * vd / (vd + 1.0)
        best = int(np.argmax(value))
        top = value[best]
        if not top > settle:
            return []
        picks = [(int(f[best]), int(s[best]))]
        if count == 1:
            return picks
        # What each pair can be worth at most this round (the covariance only shrinks): its
        # value now, each candidate's chance of being in the top-k taken at its most.
        most = np.where(mean > cut, 1.0, inside)
        ma, mb = most[f], most[s]
        either_most = ma + mb - ma * mb
        share = wrong * vd / (vd + 1.0)
        bound = either_most * share
        keep = np.flatnonzero(~(bound < 0.5 * settle))
        fk, sk, atk, gapk = f[keep], s[keep], at[keep], gap[keep]
        sharek = share[keep]
        boundk = bound[keep] * (1 + 1e-6) + 1e-15
        gone = np.zeros(len(keep), dtype=bool)
        gone[np.searchsorted(keep, best)] = True
        i, j = picks[-1]
        while len(picks) < len(keep):
            u = cov[:, i] - cov[:, j]
            cov -= np.outer(u, u) / (1.0 + u[i] - u[j])
            var = np.diag(cov)
            inside = _phi(above / np.sqrt(var))
            guess = 0.9 * top
            while True:
                ev = np.flatnonzero(boundk >= guess)
                if len(ev) > 64:  # fewer exact values: the chance of being in the top-k now
                    fe, se = fk[ev], sk[ev]
                    a, b = inside[fe], inside[se]
                    ev = ev[(a + b - a * b) * sharek[ev] * (1 + 1e-6) + 1e-15 >= guess]
                fe, se = fk[ev], sk[ev]
                vd = np.maximum(var[fe] + var[se] - 2 * flat[atk[ev]], 1e-12)
                wrong = _phi_neg(gapk[ev] / np.sqrt(vd))
                a, b = inside[fe], inside[se]
                vals = (a + b - a * b) * wrong * vd / (vd + 1.0)
                vals[gone[ev]] = -np.inf
                at_best = int(np.argmax(vals)) if len(vals) else -1
                top = vals[at_best] if len(vals) else -np.inf
                if top >= guess or top != top:
                    break
                if guess <= settle:
                    break
                guess = max(top, settle)
            if not top > settle:
                break
            best = int(ev[at_best])
            i, j = int(fk[best]), int(sk[best])
            picks.append((i, j))
            if len(picks) == count:
                break
            gone[best] = True
            sharek[ev] = wrong * vd / (vd + 1.0)
        return picks


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise, by its logistic approximation (error < 0.01)."""
    return 1.0 / (1.0 + np.exp(_SLOPE * np.minimum(np.maximum(x, -40.0), 40.0)))


def _phi_neg(x: np.ndarray) -> np.ndarray:
    """:func:`_phi` of ``x <= 0`` (the clip at 40 never applies)."""
    return 1.0 / (1.0 + np.exp(_SLOPE * np.maximum(x, -40.0)))
