"""The reference: the active ranker before its model was made incremental (a copy, kept to prove
the decisions unchanged; see tests/test_active_same.py).

Active top-k ranking under a budget: ask, in each round, the pairs that most reduce the
uncertainty about the top-k, from a Gaussian model of the judge's margins.

Model. Candidate ``i`` has a latent relevance ``theta_i``; a comparison (i, j) is sent back the
judge's aggregated margin ``y`` (this ranker is *soft*: see :mod:`prp.aggregate`), read as
``y = theta_i - theta_j + noise`` (a judge without margins sends +1 / 0 / -1, read the same
way). The prior is the first-stage order: ``theta_i ~ N(-prior * log(1 + i), spread**2)`` in
units of the answers' RMS, so it means the same whatever the judge's scale. The posterior is
Gaussian (a ridge regression on the comparison graph's Laplacian). The noise level is estimated
every round from the residuals of the plain least-squares fit over the degrees of freedom it
leaves, so a consistent judge quickly earns full trust and a noisy one does not.

Rounds. Each round holds up to ``round_size`` comparisons, picked greedily: a pair's value is
the chance that at least one of the two is in the top-k, times the chance that the current
estimate orders them wrongly, times the share of their difference's variance one answer would
remove; after each pick the covariance is updated (rank one) as if it had been answered, so
a round spreads over the candidates. A pair is asked at most once (its answer would not change).

Stopping. The ranker spends its whole ``budget`` (comparisons; ``None``: every pair may be
asked) unless the top-k is settled first: no unasked pair has value above ``settle``. On
:class:`Cut` it returns the current estimate. It always returns a permutation: the top-k by
posterior mean (ties to the first-stage order), then the rest in first-stage order.
"""

from __future__ import annotations

import math

import numpy as np
from threadpoolctl import ThreadpoolController

from sorters._base import Cut, SorterGen, check_args, finish

_controller: ThreadpoolController | None = None


def _one_blas_thread():  # noqa: ANN202
    """A context limiting BLAS to one thread (the loaded libraries are scanned once, not per call)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def active(n: int, k: int, budget: int | None = None, round_size: int = 10, prior: float = 0.3,
           spread: float = 1.0, settle: float = 0.002) -> SorterGen:
    """Top-k by adaptive pair selection; see the module docstring."""
    k = check_args(n, k)
    _check(budget, round_size, prior, spread, settle)
    pairs_left = n * (n - 1) // 2 if budget is None else min(budget, n * (n - 1) // 2)
    if n <= 1 or pairs_left == 0:
        return finish(range(n), n)
    model = _Model(n, prior, spread)
    try:
        while pairs_left > 0:
            asks = model.pick(k, min(round_size, pairs_left), settle)
            if not asks:
                break
            model.observe(asks, (yield asks))
            pairs_left -= len(asks)
    except Cut:
        pass
    return finish(model.top(k), n)


active.soft = True  # type: ignore[attr-defined]  # it reads margins, not WIN / TIE / LOSS


def _check(budget: int | None, round_size: int, prior: float, spread: float, settle: float) -> None:
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
        raise ValueError(f"budget must be an integer >= 0 (comparisons) or None, got {budget!r}")
    if not isinstance(round_size, int) or isinstance(round_size, bool) or round_size < 1:
        raise ValueError(f"round_size must be an integer >= 1, got {round_size!r}")
    for name, value in (("prior", prior), ("spread", spread), ("settle", settle)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if prior < 0 or spread <= 0 or settle < 0:
        raise ValueError(f"need prior >= 0, spread > 0 and settle >= 0; got {prior}, {spread}, {settle}")


class _Model:
    """The Gaussian posterior over relevances (``mean``, ``cov``), in units of the judge's noise."""

    def __init__(self, n: int, prior: float, spread: float) -> None:
        self.n = n
        self.mu = -prior * np.log1p(np.arange(n))  # the prior, in units of the answers' RMS
        self.spread = spread
        self.lap = np.zeros((n, n))  # the comparison graph's Laplacian
        self.rows: list[tuple[int, int]] = []
        self.y = np.zeros(0)
        self.sigma = 1.0  # the noise level, in the answers' units
        self.asked = np.eye(n, dtype=bool)
        self.mean = self.mu.copy()
        self.cov = np.eye(n) * spread**2

    def _fit(self, sigma: float) -> None:
        """The posterior mean for answers whose noise has standard deviation ``sigma``."""
        rhs = self.prior_prec * self.prior_mean
        i, j = np.asarray(self.rows).T
        np.add.at(rhs, i, self.y / sigma)
        np.add.at(rhs, j, -self.y / sigma)
        self.mean = self.cov @ rhs

    def _noise(self) -> tuple[float, float]:
        """The answers' noise level: the RMS residual of the plain least-squares fit over the
        degrees of freedom it leaves (the answers' RMS while fewer than 5 are left), never below
        a hundredth of the answers' RMS."""
        y = self.y
        rms = math.sqrt(float(y @ y) / len(y)) or 1.0
        design = np.zeros((len(y), self.n))
        rows = np.arange(len(y))
        i, j = np.asarray(self.rows).T
        design[rows, i], design[rows, j] = 1.0, -1.0
        theta, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
        dof = len(y) - rank
        if dof < 5:
            return rms, rms
        resid = y - design @ theta
        return max(math.sqrt(float(resid @ resid) / dof), 0.01 * rms), rms

    def observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        with _one_blas_thread():  # 100x100 algebra: threads only cost here
            self._observe(asks, outcomes)

    def _observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        if len(outcomes) != len(asks):
            raise ValueError(f"{len(outcomes)} outcomes for a round of {len(asks)} comparisons")
        for i, j in asks:
            self.rows.append((i, j))
            self.lap[i, i] += 1
            self.lap[j, j] += 1
            self.lap[i, j] -= 1
            self.lap[j, i] -= 1
            self.asked[i, j] = self.asked[j, i] = True
        self.y = np.concatenate([self.y, np.asarray(outcomes, dtype=float)])
        self.sigma, rms = self._noise()
        scale = rms / self.sigma  # the prior is in units of the answers' RMS; the model, the noise's
        self.prior_mean = self.mu * scale
        self.prior_prec = 1.0 / (self.spread * scale) ** 2
        self.cov = np.linalg.inv(self.lap + self.prior_prec * np.eye(self.n))
        self._fit(self.sigma)

    def top(self, k: int) -> list[int]:
        return sorted(range(self.n), key=lambda c: (-self.mean[c], c))[:k]

    def pick(self, k: int, count: int, settle: float) -> list[tuple[int, int]]:
        """Up to ``count`` unasked pairs of highest value, each pick updating the covariance."""
        with _one_blas_thread():
            return self._pick(k, count, settle)

    def _pick(self, k: int, count: int, settle: float) -> list[tuple[int, int]]:
        mean, cov, n = self.mean, self.cov.copy(), self.n
        order = np.argsort(-mean, kind="stable")
        cut = (mean[order[k - 1]] + mean[order[k]]) / 2 if k < n else -np.inf
        upper = np.triu(~self.asked, 1)
        diff = mean[:, None] - mean[None, :]
        picks: list[tuple[int, int]] = []
        while len(picks) < count:
            var = np.diag(cov)
            inside = _phi((mean - cut) / np.sqrt(var))
            either = inside[:, None] + inside[None, :] - inside[:, None] * inside[None, :]
            vdiff = np.maximum(var[:, None] + var[None, :] - 2 * cov, 1e-12)
            wrong = _phi(-np.abs(diff) / np.sqrt(vdiff))
            value = np.where(upper, either * wrong * vdiff / (vdiff + 1.0), -1.0)
            best = int(np.argmax(value))
            if value.flat[best] <= settle:
                break
            i, j = divmod(best, n)
            picks.append((i, j))
            upper[i, j] = False
            u = cov[:, i] - cov[:, j]
            cov -= np.outer(u, u) / (1.0 + u[i] - u[j])
        return picks


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise, by its logistic approximation (error < 0.01)."""
    return 1.0 / (1.0 + np.exp(-1.702 * np.clip(x, -40, 40)))
