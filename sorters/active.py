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

Shapes (``size`` > 2, in a spec ``active:k=4``). The ranker then chooses each question's shape
and size from the same values: the round's picks, best first, are grouped into disjoint groups
of at most ``size`` candidates (a pick joins the group of one of its two candidates while that
group has room; a pick whose candidates are in two groups already is left to the next round).
A group of two is asked as a pair, a larger one as one ``set`` question ("which is the most
relevant?"), so the ranker asks a set where several valuable comparisons meet and a pair where
one stands alone. A set's answer enters the model as the comparisons it implies, the winner
against each other member: with the judge's distribution over the set, their margin is the
log-odds ``log(p_winner / p_other)`` (a pair judge's margin is the same log-odds of its two
labels), capped at :data:`SET_MARGIN_CAP`; without it, the winner's margin is 1 (the unit of a
judge that answers +1 / 0 / -1). A set costs one prompt of the budget, as a pair does. A set
with no usable answer marks its comparisons asked and tells the model nothing.

Stopping. The ranker spends its whole ``budget`` (comparisons; ``None``: every pair may be
asked) unless the top-k is settled first: no unasked pair has value above ``settle``. On
:class:`Cut` it returns the current estimate. It always returns a permutation: the top-k by
posterior mean (ties to the first-stage order), then the rest in first-stage order.

Cost. The model (numpy) lives in :mod:`sorters._active_model`, imported on the first round (so
``import sorters`` stays light). It is updated, not re-solved, each round (a Woodbury step per
round while the prior's weight stands, the noise from the comparison graph), and a round's later
picks value only the pairs their bounds leave in reach, with the same decisions as a full
re-solve (see there).
"""

from __future__ import annotations

import math

from ._base import Cut, Pick, SetQuestion, SorterGen, check_args, finish

#: The largest margin a set's answer gives one comparison (a probability of 0 is not infinite evidence).
SET_MARGIN_CAP = 10.0


def active(n: int, k: int, budget: int | None = None, round_size: int = 10, prior: float = 0.3,
           spread: float = 1.0, settle: float = 0.002, size: int = 2) -> SorterGen:
    """Top-k by adaptive pair (or set) selection; see the module docstring."""
    k = check_args(n, k)
    _check(budget, round_size, prior, spread, settle)
    if not isinstance(size, int) or isinstance(size, bool) or not 2 <= size <= 26:
        raise ValueError(f"size must be an integer from 2 to 26 (passages a question shows), got {size!r}")
    pairs_left = n * (n - 1) // 2 if budget is None else min(budget, n * (n - 1) // 2)
    if n <= 1 or pairs_left == 0:
        return finish(range(n), n)
    from ._active_model import Model  # numpy, on the first round only

    model = Model(n, prior, spread)
    try:
        while pairs_left > 0:
            if size == 2:
                asks = model.pick(k, min(round_size, pairs_left), settle)
                if not asks:
                    break
                model.observe(asks, (yield asks))
                pairs_left -= len(asks)
                continue
            picks = model.pick(k, round_size, settle)
            if not picks:
                break
            questions = _group(picks, size)[:pairs_left]
            answers = yield questions
            pairs, margins, unanswered = _as_comparisons(questions, answers)
            if pairs:
                model.observe(pairs, margins)
            model.skip(unanswered)
            pairs_left -= len(questions)
    except Cut:
        pass
    return finish(model.top(k), n)


def _group(picks: list[tuple[int, int]], size: int) -> list:
    """The picks, best first, as disjoint groups of at most ``size`` candidates: a pair per
    group of two, a :class:`SetQuestion` (ids in first-stage order) per larger one."""
    groups: list[list[int]] = []
    where: dict[int, int] = {}
    for i, j in picks:
        gi, gj = where.get(i), where.get(j)
        if gi is None and gj is None:
            where[i] = where[j] = len(groups)
            groups.append([i, j])
        elif gi is not None and gj is None and len(groups[gi]) < size:
            where[j] = gi
            groups[gi].append(j)
        elif gj is not None and gi is None and len(groups[gj]) < size:
            where[i] = gj
            groups[gj].append(i)
    return [(min(g), max(g)) if len(g) == 2 else SetQuestion(tuple(sorted(g))) for g in groups]


def _as_comparisons(questions: list, answers: list) -> tuple[list[tuple[int, int]], list[float],
                                                                 list[tuple[int, int]]]:
    """The comparisons a round's answers give the model (pairs and their margins), and those of
    questions answered with nothing usable."""
    pairs: list[tuple[int, int]] = []
    margins: list[float] = []
    unanswered: list[tuple[int, int]] = []
    for question, answer in zip(questions, answers, strict=True):
        if type(question) is tuple:
            pairs.append(question)
            margins.append(float(answer))  # type: ignore[arg-type]
            continue
        ids = question.ids
        winner = answer.winner if isinstance(answer, Pick) else None
        if winner is None:
            unanswered += [(a, b) for x, a in enumerate(ids) for b in ids[x + 1:]]
            continue
        probs = answer.probs
        for other in ids:
            if other == winner:
                continue
            margin = 1.0
            if probs is not None:
                p_win, p_other = probs[ids.index(winner)], probs[ids.index(other)]
                margin = SET_MARGIN_CAP if p_other <= 0 else min(SET_MARGIN_CAP, math.log(p_win / p_other))
            pairs.append((winner, other) if winner < other else (other, winner))
            margins.append(margin if winner < other else -margin)
    return pairs, margins, unanswered


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
