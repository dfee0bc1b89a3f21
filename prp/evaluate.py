"""Effectiveness metrics through ir-measures (trec_eval conventions: linear gain).

Measures are ir-measures strings (``"nDCG@10"``, ``"RR(rel=2)@10"``, ``"P@5"``...). Rules: only
queries that have judgments are scored (trec_eval without ``-c``: a ranked query absent from the
qrels is left out, not counted as 0); an unjudged document is not relevant. Needs the ``eval``
extra (``pip install 'prp[eval]'``): without it an ImportError says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _ir_measures():
    try:
        import ir_measures
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("metrics need the 'eval' extra: pip install 'prp[eval]'") from exc
    return ir_measures


def run_from_rankings(rankings: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """``{qid: [docid in rank order]}`` -> an ir-measures run with decreasing scores."""
    return {qid: {d: float(len(ids) - r) for r, d in enumerate(ids)} for qid, ids in rankings.items()}


def mean_measure(measure: str, rankings: Mapping[str, Sequence[str]],
                 qrels: Mapping[str, Mapping[str, int]]) -> float:
    """Mean of ``measure`` (e.g. ``"nDCG@10"``) over the ranked queries that have judgments.

    Args:
        measure: an ir-measures string.
        rankings: ``{qid: [docid, ...]}`` in rank order, e.g. ``{r.qid: r.doc_ids for r in
            results}``.
        qrels: ``{qid: {docid: grade}}`` (:func:`prp.data.load_qrels`).

    Returns 0.0 when no ranked query has judgments. Raises ValueError for a measure
    ir-measures cannot parse, ImportError without the ``eval`` extra.

    Example::

        mean_measure("nDCG@10", {"q1": ["d2", "d1"]}, {"q1": {"d2": 1}})   # 1.0
    """
    irm = _ir_measures()
    parsed = irm.parse_measure(measure)
    run = run_from_rankings(rankings)
    judged = {qid: dict(qrels[qid]) for qid in run if qid in qrels}
    if not judged:
        return 0.0
    return float(irm.calc_aggregate([parsed], judged, run)[parsed])


def evaluate_run(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                 measures: Sequence[str]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """``(per_query, means)`` of ``measures`` over a scored run ``{qid: {docid: score}}``.

    ``per_query`` is ``{qid: {measure: value}}`` for the run's queries that have judgments
    (trec_eval without ``-c``: queries absent from the run are not counted); ``means`` their
    means, keyed by the measure strings as given (0.0 when no query is judged).

    Example::

        per_query, means = evaluate_run({"q1": {"d1": 2.0, "d2": 1.0}}, {"q1": {"d2": 1}},
                                        ["nDCG@10", "P@1"])
        means["P@1"]   # 0.0
    """
    irm = _ir_measures()
    parsed = {name: irm.parse_measure(name) for name in measures}
    by_measure = {m: name for name, m in parsed.items()}
    judged = {qid: dict(qrels[qid]) for qid in run if qid in qrels}
    scored = {qid: dict(docs) for qid, docs in run.items() if qid in judged}
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in scored}
    for metric in irm.iter_calc(list(parsed.values()), judged, scored):
        per_query[metric.query_id][by_measure[metric.measure]] = float(metric.value)
    means = {name: (sum(row[name] for row in per_query.values()) / len(per_query) if per_query else 0.0)
             for name in measures}
    return per_query, means
