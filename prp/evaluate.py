"""Effectiveness metrics through ir-measures (trec_eval conventions: linear gain)."""

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
    """Mean of ``measure`` (e.g. ``"nDCG@10"``) over the ranked queries that have judgments."""
    irm = _ir_measures()
    parsed = irm.parse_measure(measure)
    run = run_from_rankings(rankings)
    judged = {qid: dict(qrels[qid]) for qid in run if qid in qrels}
    return float(irm.calc_aggregate([parsed], judged, run)[parsed])
