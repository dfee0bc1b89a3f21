"""The numpy model behind :mod:`sorters.active`, imported on the first round of an active ranker
(``import sorters`` never loads numpy).

The same decisions as the full re-solve it replaced (``tests/active_reference.py``; checked on
fixed seeds by ``tests/test_active_same.py``), for less work per round:

* **Picks** take, elementwise, exactly the reference's arithmetic on exactly its numbers (the
  covariance of the round's start, downdated pick by pick), so a pick is the reference's pick,
  ties included (the first unasked pair in row-major order). What changes is which numbers are
  computed. The first pick values every unasked pair. Every pair also gets a bound on what it
  can be worth this round: its difference's share only falls as the covariance shrinks; a
  candidate's chance of being in the top-k falls below the cut, and above it rises at most as
  far as its variance can fall, by at most ``1 + vd`` per pick (Cauchy-Schwarz, ``vd`` the
  largest difference variance). The later picks value only a working set, the pairs whose
  bound reaches a share of the best value (and only the rows and columns of the covariance
  they touch, kept downdated across the round: a set that grows reuses them while they hold its
  candidates); a pick stands when it is worth more than that share, else the set grows. A very
  large set (nearly equal values) first bounds each pair with its chance of being in the top-k
  now.
* **The model** is kept, not re-solved. The round's comparisons update the covariance
  ``(L + cI)^-1`` by one Woodbury step (rank = the round's size) while the prior's weight ``c``
  is unchanged (a consistent judge's noise sits at its floor), for up to 16 rounds (then it is
  inverted afresh: the steps' rounding adds up); a new ``c`` (the noise estimate moved) inverts
  it again, by two blocks from 64 candidates. Without a prior (``prior=0``) the candidates are
  exchangeable and values tie exactly, so which pair goes first rests on the inverse's rounding:
  the covariance is then inverted every round as the reference inverts it. The noise level (the
  plain least-squares fit's residual) solves the Laplacian with ``(L + 11'/n)^-1``, kept by the
  same Woodbury steps once the comparison graph is connected (before, a solve with each
  component's projection; the components are kept as labels). The answers are kept in growing
  buffers, the unasked pairs as an index that shrinks.

Updates and block inverses round differently from one LU inverse (relative differences of
1e-16 to 1e-10): decisions could differ from the reference's where two values are that close, not
elsewhere. None does on the fixed seeds of ``tests/test_active_same.py``, ``bench/active_speed.py``
and ``tests/test_active_model.py``'s random configurations.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
from threadpoolctl import ThreadpoolController

_blas: list | None = None  # the BLAS libraries loaded (threadpoolctl's controllers), found once

_RATIO = 0.75  # a round's working set: the pairs whose bound reaches this share of the best value
_LARGE = 2000  # a working set larger than this values, each pick, only the pairs its bounds leave in reach
_BLOCKS = 64  # from this many candidates the covariance is inverted by blocks
_REFRESH = 16  # the covariance is inverted afresh after this many Woodbury steps (their rounding adds up)
_SLOPE = np.float64(1.702)  # phi(x) = 1 / (1 + exp(-1.702 x)), the normal CDF's logistic approximation
_PLUS_MINUS = np.array([1.0, -1.0])


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


def _woodbury(x: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """``x``, the inverse of a symmetric matrix ``A``, becomes in place the inverse of ``A + B B'``
    (``B``'s columns ``e_first - e_second``: comparisons added to a Laplacian)."""
    xb = x.take(first, 1) - x.take(second, 1)
    small = xb.take(first, 0) - xb.take(second, 0)
    small.flat[::len(first) + 1] += 1.0
    x -= xb @ (np.linalg.inv(small) @ xb.T)


def _inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of the symmetric positive definite ``a``; from :data:`_BLOCKS` rows by two
    blocks and the second's Schur complement (about 0.6 of one LU inverse of the whole)."""
    if len(a) < _BLOCKS:
        return np.linalg.inv(a)
    h = len(a) // 2
    p_inv = _inverse(a[:h, :h])
    w = p_inv @ a[:h, h:]
    t_inv = _inverse(a[h:, h:] - a[h:, :h] @ w)
    x12 = -(w @ t_inv)
    out = np.empty_like(a)
    out[:h, :h] = p_inv - x12 @ w.T
    out[:h, h:] = x12
    out[h:, :h] = x12.T
    out[h:, h:] = t_inv
    return out


class Model:
    """The Gaussian posterior over relevances (``mean``, ``cov``), in units of the judge's noise."""

    def __init__(self, n: int, prior: float, spread: float) -> None:
        self.n = n
        self.mu = -prior * np.log1p(np.arange(n))  # the prior, in units of the answers' RMS
        self.spread = spread
        # Without a prior the candidates are exchangeable and many values tie exactly: which pair
        # goes first then rests on the inverse's rounding, so the covariance is inverted as the
        # reference inverts it, every round (np.linalg.inv), never updated.
        self._exchangeable = prior == 0
        self.lap = np.zeros((n, n))  # the comparison graph's Laplacian
        self.dty = np.zeros(n)  # the design's transpose times the answers: D'y
        self.label = np.arange(n)  # each candidate's component of the comparison graph (a member's id)
        self.components = n
        self._projection: np.ndarray | None = None  # each component's mean, for ``components``
        self._projection_for = -1
        self._fit_inverse: np.ndarray | None = None  # (L + 11'/n)^-1 once the graph is connected
        self.sigma = 1.0  # the noise level, in the answers' units
        self.asked = np.eye(n, dtype=bool)
        self.mean = self.mu.copy()
        self.cov = np.eye(n) * spread**2
        self.prior_prec = math.nan  # the prior's weight c of ``cov`` (none yet: the first round inverts)
        self._steps = 0  # Woodbury steps since ``cov`` was last inverted
        f, s = np.triu_indices(n, 1)
        self._f, self._s, self._at = f, s, f * n + s  # the unasked pairs, row-major
        # the comparisons asked, in order (first[r], second[r]), and their answers: growing buffers
        self._m = 0
        self._ybuf = np.zeros(64)
        self._fbuf, self._sbuf = np.zeros(64, dtype=np.intp), np.zeros(64, dtype=np.intp)
        self.y, self.first, self.second = self._ybuf[:0], self._fbuf[:0], self._sbuf[:0]

    def _fit(self, sigma: float) -> None:
        """The posterior mean for answers whose noise has standard deviation ``sigma``."""
        rhs = self.prior_prec * self.prior_mean
        np.add.at(rhs, self.first, self.y / sigma)
        np.add.at(rhs, self.second, -self.y / sigma)
        self.mean = self.cov @ rhs

    def _noise(self, first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
        """The answers' noise level: the RMS residual of the plain least-squares fit over the
        degrees of freedom it leaves (the answers' RMS while fewer than 5 are left), never below
        a hundredth of the answers' RMS; and the answers' RMS."""
        y = self.y
        rms = math.sqrt(float(y @ y) / len(y)) or 1.0
        dof = len(y) - (self.n - self.components)  # the design's rank: n minus the components
        if self.components == 1:  # (L + 11'/n)^-1, kept up to date by the round's comparisons
            if self._fit_inverse is None:
                self._fit_inverse = _inverse(self.lap + 1.0 / self.n)
            else:
                _woodbury(self._fit_inverse, first, second)
        if dof < 5:
            return rms, rms
        if self._fit_inverse is not None:
            theta = self._fit_inverse @ self.dty
        else:  # (L + P) theta = D'y, P the projection on each component's constants
            if self._projection_for != self.components:
                same = self.label[:, None] == self.label[None, :]
                self._projection = same / same.sum(axis=1, keepdims=True)
                self._projection_for = self.components
            theta = np.linalg.solve(self.lap + self._projection, self.dty)
        resid = y - (theta[self.first] - theta[self.second])
        return max(math.sqrt(float(resid @ resid) / dof), 0.01 * rms), rms

    def observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        if len(outcomes) != len(asks):
            raise ValueError(f"{len(outcomes)} outcomes for a round of {len(asks)} comparisons")
        with one_blas_thread():  # 100x100 algebra: threads only cost here
            self._observe(asks, outcomes)

    def _observe(self, asks: list[tuple[int, int]], outcomes: list[float]) -> None:
        answers = np.asarray(outcomes, dtype=float)
        first = np.array([i for i, _ in asks], dtype=np.intp)
        second = np.array([j for _, j in asks], dtype=np.intp)
        n, r = self.n, len(asks)
        np.add.at(self.lap.reshape(-1), np.concatenate([first * (n + 1), second * (n + 1), first * n + second,
                                                        second * n + first]), np.repeat(_PLUS_MINUS, 2 * r))
        np.add.at(self.dty, first, answers)
        np.subtract.at(self.dty, second, answers)
        self.asked[first, second] = True
        self.asked[second, first] = True
        self._drop_asked()
        if self.components > 1:
            label = self.label
            for i, j in asks:
                a, b = label[i], label[j]
                if a != b:
                    label[label == a] = b
                    self.components -= 1
        m = self._m
        if m + r > len(self._ybuf):
            grow = max(2 * len(self._ybuf), m + r) - m
            self._ybuf = np.concatenate([self._ybuf[:m], np.zeros(grow)])
            self._fbuf = np.concatenate([self._fbuf[:m], np.zeros(grow, dtype=np.intp)])
            self._sbuf = np.concatenate([self._sbuf[:m], np.zeros(grow, dtype=np.intp)])
        self._ybuf[m:m + r], self._fbuf[m:m + r], self._sbuf[m:m + r] = answers, first, second
        self._m = m = m + r
        self.y, self.first, self.second = self._ybuf[:m], self._fbuf[:m], self._sbuf[:m]
        self.sigma, rms = self._noise(first, second)
        scale = rms / self.sigma  # the prior is in units of the answers' RMS; the model, the noise's
        self.prior_mean = self.mu * scale
        prior_prec = 1.0 / (self.spread * scale) ** 2
        if prior_prec == self.prior_prec and not self._exchangeable and self._steps < _REFRESH:
            _woodbury(self.cov, first, second)
            self._steps += 1
        else:
            self.prior_prec, self._steps = prior_prec, 0
            a = self.lap.copy()
            a.flat[::n + 1] += prior_prec
            self.cov = np.linalg.inv(a) if self._exchangeable else _inverse(a)
        self._fit(self.sigma)

    def _drop_asked(self) -> None:
        keep = ~self.asked.reshape(-1)[self._at]
        self._f, self._s, self._at = self._f[keep], self._s[keep], self._at[keep]

    def skip(self, pairs: list[tuple[int, int]]) -> None:
        """Mark ``pairs`` asked without an answer (a question that got none is not asked again)."""
        for i, j in pairs:
            self.asked[i, j] = self.asked[j, i] = True
        self._drop_asked()

    def top(self, k: int) -> list[int]:
        return sorted(range(self.n), key=lambda c: (-self.mean[c], c))[:k]

    def pick(self, k: int, count: int, settle: float) -> list[tuple[int, int]]:
        """Up to ``count`` unasked pairs of highest value, each pick downdating the covariance
        (rank one) as if it had been answered."""
        mean, n = self.mean, self.n
        f, s, at = self._f, self._s, self._at
        if not len(at):
            return []
        if k < n:
            part = np.partition(-mean, (k - 1, k))
            cut = (-part[k - 1] + -part[k]) / 2
        else:
            cut = -np.inf
        cov = self.cov
        above = mean - cut
        var = cov.diagonal()
        inside = _phi(above / np.sqrt(var))
        dist = np.abs(mean[f] - mean[s])
        a, b = inside[f], inside[s]
        vd = np.maximum(var[f] + var[s] - 2 * cov.reshape(-1)[at], 1e-12)
        wrong = _phi_below(dist / np.sqrt(vd))
        vd1 = vd + 1.0
        value = a + b
        value -= a * b
        value *= wrong
        value *= vd
        value /= vd1  # (a + b - a b) wrong vd / (vd + 1), the reference's order
        best = int(np.argmax(value))  # the first of the best in row-major order, as the reference's
        top = value[best]
        if not top > settle:
            return []
        picks = [(int(f[best]), int(s[best]))]
        if count == 1:
            return picks
        # What each pair can be worth at most this round: its share now (it only falls), times
        # the chance of either candidate being in the top-k at its most (below the cut, now;
        # above it, at the least variance the round's picks can leave).
        share = wrong * vd
        share /= vd1
        shrink = math.log1p(float(vd.max())) * (count - 1)
        if shrink < 60:  # (else no bound below 1 worth the arithmetic)
            least = var * (math.exp(-shrink) * (1 - 1e-6))
            most = np.where(above > 0, _phi(above / np.sqrt(least)), inside)
        else:
            most = np.where(above > 0, 1.0, inside)
        ma, mb = most[f], most[s]
        either = (ma + mb - ma * mb) * (1 + 1e-6)  # (1 + 1e-6) and 1e-15: for rounding
        bound = either * share + 1e-15
        floor = 0.5 * settle  # a pair bound below this is never worth asking this round
        chosen = [best]  # the picks, as indices of the unasked pairs
        theta = max(_RATIO * top, floor)
        work = _Working(cov, above, picks)
        while True:  # the working set: the pairs whose bound reaches theta, in row-major order
            ev = np.flatnonzero(bound >= theta)
            gone = np.zeros(len(ev), dtype=bool)
            gone[np.searchsorted(ev, chosen)] = True
            top = work.picks_from(f[ev], s[ev], dist[ev], bound[ev], either[ev], gone, theta, floor, settle,
                                  count, ev, chosen)
            if top is None:
                return picks
            theta = max(_RATIO * top, floor) if top > -np.inf else floor


class _Working:
    """A round's later picks, on the rows and columns of the covariance of its working sets'
    candidates (``sub``), downdated pick by pick as the reference downdates the whole: its
    arithmetic, elementwise, so each entry is the reference's to the bit whichever rows are held. A
    larger working set keeps them while they hold its candidates; else they are taken again for the
    union and the round's downdates so far replayed."""

    def __init__(self, cov: np.ndarray, above: np.ndarray, picks: list) -> None:
        self.cov, self.above_all, self.picks = cov, above, picks
        self.mark = np.zeros(len(cov), dtype=bool)
        self.loc = np.empty(len(cov), dtype=np.intp)

    def _cover(self, fe: np.ndarray, se: np.ndarray) -> None:
        """The rows and columns of ``fe`` and ``se``'s candidates (and those held), downdated by the
        round's picks so far."""
        mark = self.mark
        if mark[fe].all() and mark[se].all():
            return
        mark[fe] = True
        mark[se] = True
        cand = np.flatnonzero(mark)
        m = len(cand)
        self.loc[cand] = np.arange(m)
        self.sub = sub = self.cov.take(cand, 0).take(cand, 1)
        self.flat = sub.reshape(-1)
        self.var = sub.diagonal()  # a view: follows the downdates
        self.above = self.above_all[cand]
        self.inside = np.empty(m)
        self.u, self.outer = np.empty(m), np.empty((m, m))
        loc = self.loc
        for i, j in self.picks:  # the round's downdates so far
            self._downdate(int(loc[i]), int(loc[j]))

    def _downdate(self, i: int, j: int) -> None:
        """The reference's ``cov -= outer(u, u) / (1 + u[i] - u[j])``, ``u = cov[:, i] - cov[:, j]``."""
        sub, u, outer = self.sub, self.u, self.outer
        np.subtract(sub[:, i], sub[:, j], out=u)
        np.multiply(u[:, None], u, out=outer)
        np.divide(outer, 1.0 + u[i] - u[j], out=outer)
        np.subtract(sub, outer, out=sub)

    def picks_from(self, fe: np.ndarray, se: np.ndarray, diste: np.ndarray, bounde: np.ndarray,
                   eithere: np.ndarray, gone: np.ndarray, theta: float, floor: float, settle: float,
                   count: int, ev: np.ndarray, chosen: list[int]) -> float | None:
        """The round's next picks from the working set (``fe``, ``se``: its pairs). Up to
        :data:`_LARGE` pairs, each pick values them all (numpy's cost is mostly per call at these
        sizes); a larger set (nearly equal values), the pairs whose bound (refreshed as they are
        valued) reaches a floor for the best value. None when the round is over, else the best
        value when a pair outside the set may be worth more."""
        self._cover(fe, se)
        picks, loc = self.picks, self.loc
        fl, sl = loc[fe], loc[se]
        atl = fl * len(self.sub) + sl
        flat, var, above, inside = self.flat, self.var, self.above, self.inside
        if len(fl) <= _LARGE:
            while True:
                _phi_of(above, var, inside)
                vals = _values(var, inside, fl, sl, flat[atl], diste)[0]
                vals[gone] = -np.inf
                here = int(vals.argmax())  # the first of the best: row-major order, as the reference's
                top = vals[here]
                if not top >= theta and theta > floor and top == top:
                    return top
                if not top > settle:
                    return None
                chosen.append(int(ev[here]))
                picks.append((int(fe[here]), int(se[here])))
                if len(picks) == count:
                    return None
                gone[here] = True
                self._downdate(int(fl[here]), int(sl[here]))
        bounde = bounde.copy()
        bounde[gone] = -np.inf
        guess = None
        while True:
            _phi_of(above, var, inside)
            if guess is None:  # the best bound's value
                x = int(np.argmax(bounde))
                one = slice(x, x + 1)
                guess = _values(var, inside, fl[one], sl[one], flat[atl[one]], diste[one])[0][0]
            while True:
                sel = np.flatnonzero(bounde >= guess)
                vals, w, vd = _values(var, inside, fl[sel], sl[sel], flat[atl[sel]], diste[sel])
                bounde[sel] = eithere[sel] * (w * vd / (vd + 1.0)) + 1e-15
                vals[gone[sel]] = -np.inf
                top = vals.max() if len(vals) else -np.inf
                if top >= guess or not top > -np.inf:
                    break
                guess = top  # the guess (the last pick's runner-up) was above the best
            if not top >= theta and theta > floor and top == top:
                return top
            if not top > settle:
                return None
            at_best = int(np.argmax(vals))
            here = int(sel[at_best])
            chosen.append(int(ev[here]))
            picks.append((int(fe[here]), int(se[here])))
            if len(picks) == count:
                return None
            gone[here] = True
            bounde[here] = -np.inf
            vals[at_best] = -np.inf
            guess = 0.999 * vals.max() if len(vals) > 1 else None
            if guess is not None and not guess > -np.inf:
                guess = None
            self._downdate(int(fl[here]), int(sl[here]))


def _values(var: np.ndarray, inside: np.ndarray, fl: np.ndarray, sl: np.ndarray, c: np.ndarray,
            dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs' values (and the chance the estimate orders them wrongly, their difference's
    variance), elementwise exactly as the reference's over the full matrix: ``fl`` and ``sl`` index
    ``var`` and ``inside``, ``c`` is each pair's covariance, ``dist`` its means' distance."""
    vd = np.maximum(var[fl] + var[sl] - 2 * c, 1e-12)
    wrong = _phi_below(dist / np.sqrt(vd))
    a, b = inside[fl], inside[sl]
    return (a + b - a * b) * wrong * vd / (vd + 1.0), wrong, vd


def _phi_of(above: np.ndarray, var: np.ndarray, out: np.ndarray) -> None:
    """``out`` = :func:`_phi` of ``above / sqrt(var)`` (the same arithmetic, in place)."""
    np.sqrt(var, out=out)
    np.divide(above, out, out=out)
    np.maximum(out, -40.0, out=out)
    out *= -_SLOPE
    np.exp(out, out=out)
    out += 1.0
    np.divide(1.0, out, out=out)


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise, by its logistic approximation (error < 0.01): the
    reference's ``1 / (1 + exp(-1.702 clip(x, -40, 40)))`` to the bit (above 40 both are 1)."""
    return 1.0 / (1.0 + np.exp(-_SLOPE * np.maximum(x, -40.0)))


def _phi_below(z: np.ndarray) -> np.ndarray:
    """:func:`_phi` of ``-z`` for ``z >= 0``, to the bit (signs flip exactly)."""
    return 1.0 / (1.0 + np.exp(_SLOPE * np.minimum(z, 40.0)))
