"""Active top-k ranking under a budget: ask, in each round, the pairs that most reduce the
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

Cost. The model (numpy) lives in :mod:`sorters._active_model`, imported on the first round (so
``import sorters`` stays light); it scores only the unasked pairs worth asking and estimates the
noise from the comparison graph, with the same decisions as a full re-solve (see there).
"""

from __future__ import annotations

import math

from ._base import Cut, SorterGen, check_args, finish


def active(n: int, k: int, budget: int | None = None, round_size: int = 10, prior: float = 0.3,
           spread: float = 1.0, settle: float = 0.002) -> SorterGen:
    """Top-k by adaptive pair selection; see the module docstring."""
    k = check_args(n, k)
    _check(budget, round_size, prior, spread, settle)
    pairs_left = n * (n - 1) // 2 if budget is None else min(budget, n * (n - 1) // 2)
    if n <= 1 or pairs_left == 0:
        return finish(range(n), n)
    from ._active_model import Model  # numpy, on the first round only

    model = Model(n, prior, spread)
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
