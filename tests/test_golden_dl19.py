"""Rankings and counts on DL19 are the committed ones, for every ranker and every offline judge.

``tests/data/golden-dl19.json.gz`` holds, for each case of :data:`CASES` (a judge, a ranker,
Reranker settings, a depth and a number of DL19 queries) and each of its queries, the ranking
the public :class:`prp.Reranker` returned (every document, see :func:`query_record`), whether it
was cut, and every count of the query's ledger (:meth:`cost.ledger.Ledger.to_dict` but
:data:`NOT_COMPARED`), plus the ledger of the whole call. ``bench/golden_dl19.py`` wrote it from
a clean checkout of the commit the file names, before the scheduler, engine, ledger and sorters
were rewritten; this test reruns each case with the code under test and compares field by field:
integers, flags and rankings exactly, fractional counts (inference shares, tokens, predicted
seconds) to a relative 1e-9. A difference names the judge, the ranker, the settings, the query
and the field.

Judges are named as ``--judge`` names them and built by :func:`prp.oracles.judges.make_judge`;
the replay sets are the committed ``bench/results/replay-qwen1.5b-dl19-d20*.json.gz`` (DL19's
first 4 queries at depth 20; the set with shaped answers answers the shaped rankers below and
no other shaped question). Each case is one ``rank_many`` call over its queries, which share
batches, so a query's inference share depends on the others: a case is compared whole.

The cases of the rankers in :data:`SLOW` run under ``pytest -m slow`` (about 25 s); the default
suite runs the others (every judge, every other ranker, sorter options and Reranker settings:
about 20 s). The DL19 files and replay sets must be those the committed results came from
(their SHA-256 is in the file); without DL19 the comparisons skip.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import math
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import sorters
from prp import Reranker
from prp.data import load_dataset
from prp.oracles.judges import OFFLINE, SIMULATED, make_judge, split

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden-dl19.json.gz"
DATA_FILES = ("bm25-top100.json", "qrels.txt")
REL_TOL = 1e-9
NOT_COMPARED = ("wall_seconds", "saved_inferences")
"""Not recorded: the measured time (it differs on every run), and virtual_inferences - inferences."""

REPLAY = "replay:path=bench/results/replay-qwen1.5b-dl19-d20.json.gz"
REPLAY_SHAPES = "replay:path=bench/results/replay-qwen1.5b-dl19-d20-shapes.json.gz"
REPLAY_QUERIES = 4  # the replay sets hold DL19's first 4 queries, at depth 20

JUDGES = (
    "perfect",
    "perfect:ties=off",
    "noisy",  # fitted to qwen2.5-coder-1.5b, seed 0
    "noisy:bias=1.0,noise=1.0,seed=7",
    "noisy:scale=0.5,bias=0.8,noise=0.6,seed=3,doc_noise=0.3,slot_bias=1.2/0.5/0.2/0,set_noise=0.4",
)
"""The simulated judges, each on every ranker of :data:`RANKERS`."""

RANKERS = ("quicksort", "mergesort", "heapsort", "bubblesort", "allpair", "tournament", "active",
           "setwise:k=4", "listwise", "tournament:k=4", "active:k=4", "auto")
"""Every registered sorter with its defaults, the k-wise ones, and the planner's choice."""
PAIR_RANKERS = ("quicksort", "mergesort", "heapsort", "bubblesort", "allpair", "tournament", "active", "auto")
"""The rankers that ask pairs only (``auto`` plans among the shapes its judge answers)."""

VARIANTS = ("quicksort:pivot=first", "quicksort:pivot=median-of-three", "quicksort:pivot=random,seed=1",
            "heapsort:sift=sequential", "bubblesort:skip_tail=false",
            "tournament:bracket=contiguous,refill=knockout,ties=ask", "tournament:k=3,depth=1,ahead=1",
            "active:budget=150,round_size=5", "setwise:k=3", "listwise:window=10,step=5,passes=2",
            "listwise:pipeline=false", "auto:objective=tokens", "auto:objective=rounds")
"""Sorter options, on the fitted noisy judge."""

SETTINGS = (
    ("quicksort", {"batch_size": 64}), ("heapsort", {"batch_size": 64}), ("quicksort", {"batch_size": 1}),
    ("quicksort", {"orders": "one"}), ("quicksort", {"orders": "random", "seed": 1}),
    ("mergesort", {"aggregate": "margin"}), ("mergesort", {"aggregate": "consistent"}),
    ("quicksort", {"tie_band": 0.5}), ("heapsort", {"orders": "one"}),  # debias matters with one order:
    ("heapsort", {"orders": "one", "debias": "auto"}), ("heapsort", {"orders": "one", "debias": 1.0}),
    ("heapsort", {"infer": True}), ("bubblesort", {"infer": True}),
    ("heapsort", {"cache": False}), ("tournament:k=4", {"cache": False}),  # they re-ask questions
    ("heapsort", {"in_flight": 4}), ("quicksort", {"concurrency": 4}),
    ("quicksort", {"budget": 60}), ("setwise:k=4", {"budget": "8inferences"}),
    ("quicksort", {"budget": "30000tokens"}), ("heapsort", {"max_inferences": 400}),
    ("setwise:k=4", {"shape_order": "reverse"}), ("listwise", {"shape_order": "random", "seed": 2}),
    ("tournament:k=4", {"shape_order": "reverse"}), ("setwise:k=4", {"k": 5}), ("quicksort", {"k": 20}),
    ("auto", {"budget": 200}),
)
"""Reranker settings other than the defaults (B=8, k=10, in-memory cache), on the fitted noisy judge."""

SLOW = ("allpair", "active", "active:k=4")
"""The rankers whose cases run under ``-m slow`` (0.4 to 3 s a case; the others take 0.01 to 0.5 s,
``auto`` about 1.5 s the first time its planner simulates a depth)."""


@dataclass(frozen=True)
class Case:
    """One ``rank_many`` call: ``judge`` (a ``--judge`` spec), ``ranker`` (a ``--sorter`` spec),
    Reranker ``settings`` beyond :data:`BASE` (sorted pairs), the first ``queries`` DL19 queries
    at ``depth``; ``slow`` cases run under ``-m slow``."""

    judge: str
    ranker: str
    depth: int
    queries: int
    settings: tuple[tuple[str, object], ...] = ()
    slow: bool = False

    @property
    def key(self) -> str:
        settings = ",".join(f"{k}={v}" for k, v in self.settings) or "-"
        return f"{self.judge} | {self.ranker} | {settings} | depth={self.depth},queries={self.queries}"


BASE = {"k": 10, "batch_size": 8}


def _case(judge: str, ranker: str, depth: int, queries: int, slow: bool = False, **settings: object) -> Case:
    return Case(judge, ranker, depth, queries, tuple(sorted(settings.items())), slow)


def cases() -> list[Case]:
    """The matrix, in a fixed order."""
    out = [_case(judge, ranker, 30, 43, slow=ranker in SLOW) for judge in JUDGES for ranker in RANKERS]
    out += [_case("noisy", ranker, 30, 43) for ranker in VARIANTS]
    out += [_case("noisy", ranker, 30, 43, **settings) for ranker, settings in SETTINGS]
    out += [_case(judge, ranker, 100, 10, slow=ranker in SLOW) for judge in ("perfect", "noisy")
            for ranker in RANKERS]
    out += [_case(REPLAY, ranker, 20, REPLAY_QUERIES) for ranker in PAIR_RANKERS]
    out += [_case(REPLAY_SHAPES, ranker, 20, REPLAY_QUERIES)  # the questions its answers were recorded for
            for ranker in ("setwise:k=4", "tournament:k=4", "listwise:window=10,step=5")]
    return out


CASES = cases()


@cache
def dataset(data: Path, depth: int):
    return load_dataset(data, depth=depth)


def judge_for(spec: str, qrels, root: Path = ROOT):
    """The judge ``spec`` names, as ``--judge`` builds it (a replay path read from ``root``)."""
    name, options = split(spec)
    if name == "replay":
        return make_judge(f"replay:path={root / str(options['path'])}")
    return make_judge(spec, qrels=qrels if name in SIMULATED else None)


def ledger_dict(ledger) -> dict:
    return {name: value for name, value in ledger.to_dict().items() if name not in NOT_COMPARED}


def query_record(result, first_stage: list[str]) -> dict:
    """One query's ranking, cut flag and ledger counts. The ranking is held as first-stage
    positions (0-based): ``top`` the first k, ``rest`` the others, or None when they are the
    remaining candidates in first-stage order (as the rankers leave them): no information lost."""
    position = {doc_id: i for i, doc_id in enumerate(first_stage)}
    order = [position.get(doc_id, doc_id) for doc_id in result.doc_ids]
    top, rest = order[: result.k], order[result.k:]
    shown = set(top)
    unranked = [i for i in range(len(first_stage)) if i not in shown]
    return {"top": top, "rest": None if rest == unranked else rest, "k": result.k, "cut": result.cut,
            **ledger_dict(result.cost)}


def run_case(case: Case, data: Path, root: Path = ROOT) -> dict:
    """``case`` run by the code importable now: its queries' ids and, field by field, a column of
    their records (:func:`query_record`), and the call's total ledger (``run``)."""
    requests, qrels = dataset(data, case.depth)
    requests = requests[: case.queries]
    settings = {**BASE, **dict(case.settings)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. no qrels for a few candidates: part of the record
        reranker = Reranker(judge_for(case.judge, qrels, root), sorter=case.ranker, **settings)
        results = reranker.rank_many(requests)
    records = [query_record(r, list(q.doc_ids)) for r, q in zip(results, requests, strict=True)]
    fields = list(dict.fromkeys(name for record in records for name in record))
    return {"qids": [r.qid for r in results],
            "columns": {name: [record.get(name, MISSING) for record in records] for name in fields},
            "run": ledger_dict(results[0].run_cost)}


MISSING = "(missing)"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprints(data: Path, root: Path = ROOT) -> dict[str, str]:
    """SHA-256 of the DL19 files and replay sets the cases read."""
    out = {name: sha256(data / name) for name in DATA_FILES}
    for spec in (REPLAY, REPLAY_SHAPES):
        path = str(split(spec)[1]["path"])
        out[path] = sha256(root / path)
    return out


def differences(expected: object, actual: object, where: str) -> Iterator[str]:
    """Every field where ``actual`` differs from ``expected`` (floats to a relative 1e-9)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for name in sorted(set(expected) | set(actual)):
            here = f"{where}.{name}"
            if name not in actual:
                yield f"{here}: missing now (committed {expected[name]!r})"
            elif name not in expected:
                yield f"{here}: new field {actual[name]!r} (not in the committed results)"
            else:
                yield from differences(expected[name], actual[name], here)
    elif isinstance(expected, list) and isinstance(actual, list):
        if expected != actual:
            first = next((i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
                         min(len(expected), len(actual)))
            yield (f"{where}: differs from position {first}: committed {expected[first:first + 10]}, "
                   f"now {actual[first:first + 10]} (lengths {len(expected)}, {len(actual)})")
    elif (isinstance(expected, (int, float)) and isinstance(actual, (int, float))
          and not isinstance(expected, bool) and not isinstance(actual, bool)
          and (isinstance(expected, float) or isinstance(actual, float))):
        if not math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=1e-12):
            yield f"{where}: committed {expected!r}, now {actual!r}"
    elif type(expected) is not type(actual) or expected != actual:
        yield f"{where}: committed {expected!r}, now {actual!r}"


def _as_ids(value: object, first_stage: list[str]) -> object:
    """A ``top`` or ``rest`` of first-stage positions as doc ids (for messages)."""
    if not isinstance(value, list):
        return value
    return [first_stage[i] if isinstance(i, int) and 0 <= i < len(first_stage) else i for i in value]


def case_differences(case: Case, expected: dict, actual: dict,
                     first_stage: dict[str, list[str]] | None = None) -> list[str]:
    """The differences of one case, each naming the judge, ranker, settings, query and field
    (rankings as doc ids when ``first_stage`` gives each query's candidates)."""
    out = []
    if expected["qids"] != actual["qids"]:
        out.append(f"{case.key} | queries: committed {expected['qids']}, now {actual['qids']}")
    now = {qid: i for i, qid in enumerate(actual["qids"])}
    columns = list(dict.fromkeys([*expected["columns"], *actual["columns"]]))
    for name in columns:
        if name not in actual["columns"]:
            out.append(f"{case.key} | every query | {name}: missing now")
            continue
        if name not in expected["columns"]:
            out.append(f"{case.key} | every query | {name}: a new field, not in the committed results")
            continue
        for qid, committed in zip(expected["qids"], expected["columns"][name], strict=True):
            value = actual["columns"][name][now[qid]] if qid in now else MISSING
            if name in ("top", "rest") and first_stage and qid in first_stage:
                committed, value = _as_ids(committed, first_stage[qid]), _as_ids(value, first_stage[qid])
            out += [f"{case.key} | qid={qid} | {diff}" for diff in differences(committed, value, name)]
    out += [f"{case.key} | run total | {diff}" for diff in differences(expected["run"], actual["run"], "run")]
    return out


def read_golden(path: Path = GOLDEN) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


# --- the tests -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def golden(dl19_dir) -> dict:
    committed = read_golden()
    now = fingerprints(dl19_dir)
    changed = [name for name, digest in committed["fingerprints"].items() if now.get(name) != digest]
    assert not changed, f"not the files the committed results came from: {', '.join(changed)}"
    return committed


def test_the_matrix_covers_every_ranker_and_offline_judge():
    simulated = {case.ranker.partition(":")[0] for case in CASES if case.judge in JUDGES}
    assert set(sorters.SORTERS) | {"auto"} <= simulated
    for judge in JUDGES:  # every ranker on every simulated judge, not only somewhere
        assert {c.ranker for c in CASES if c.judge == judge} >= set(RANKERS), judge
    assert {split(c.judge)[0] for c in CASES} == set(OFFLINE)
    assert len({c.key for c in CASES}) == len(CASES)


def test_the_committed_results_hold_every_case():
    committed = read_golden()["cases"]
    keys = [c.key for c in CASES]
    assert [k for k in keys if k not in committed] == [], "cases without committed results: regenerate"
    assert [k for k in committed if k not in keys] == [], "committed cases no longer run"
    for case in CASES:  # every query it ranks, each with a top-k of distinct candidates
        record = committed[case.key]
        assert len(set(record["qids"])) == case.queries, case.key
        k = min(dict(case.settings).get("k", BASE["k"]), case.depth)
        assert all(len(set(top)) == k and all(0 <= i < case.depth for i in top)
                   for top in record["columns"]["top"]), case.key
        assert record["run"]["prompts"] > 0, case.key


def test_a_difference_names_the_case_the_query_and_the_field():
    case = next(c for c in CASES if c.judge == "noisy" and c.ranker == "quicksort" and not c.settings)
    committed = read_golden()["cases"][case.key]
    now = copy.deepcopy(committed)
    assert case_differences(case, committed, now) == []
    qid = now["qids"][1]
    columns = now["columns"]
    columns["top"][1][0], columns["top"][1][1] = columns["top"][1][1], columns["top"][1][0]
    columns["prompts"][1] += 2
    columns["inferences"][1] *= 1 + 1e-7  # beyond the tolerance
    columns["input_tokens"][1] *= 1 + 1e-12  # within it
    columns["batch_sizes"][1] = {**columns["batch_sizes"][1], "3": 1}
    now["run"]["rounds"] += 1
    found = case_differences(case, committed, now)
    prefix = f"{case.key} | qid={qid} | "
    assert [f[len(prefix):].split(":")[0] for f in found[:-1]] == ["top", "prompts", "inferences",
                                                                    "batch_sizes.3"], found
    assert all(f.startswith(prefix) for f in found[:-1]), found
    assert found[-1].startswith(f"{case.key} | run total | run.rounds: committed "), found
    del now["columns"]["cached_tokens"]
    assert f"{case.key} | every query | cached_tokens: missing now" in case_differences(case, committed, now)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.key, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_rankings_and_counts_are_the_committed_ones(golden, dl19_dir, case):
    first_stage = {r.qid: list(r.doc_ids) for r in dataset(dl19_dir, case.depth)[0][: case.queries]}
    found = case_differences(case, golden["cases"][case.key], run_case(case, dl19_dir), first_stage)
    fields = Counter(diff.rsplit(" | ", 1)[-1].split(":")[0] for diff in found)
    shown = "\n".join(found[:25]) + (f"\n... and {len(found) - 25} more" if len(found) > 25 else "")
    assert not found, (f"{len(found)} difference(s) from the committed results, by field: "
                       f"{', '.join(f'{name} ({n})' for name, n in fields.items())}\n{shown}")
