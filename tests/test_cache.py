"""Caches: persistent across runs and processes, keyed on everything that changes an answer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import CountingOracle

from prp import CacheError, DiskCache, Judgment, Reranker, ScoresOracle
from prp.cache import MemoryCache, make_cache

ROOT = Path(__file__).resolve().parents[1]
SCORES = {f"d{i}": float((i * 37) % 11) for i in range(30)}
IDS = list(SCORES)


def test_disk_cache_persists_across_rerankers(tmp_path):
    first = CountingOracle(ScoresOracle(SCORES))
    r1 = Reranker(first, sorter="heapsort", k=5, cache=tmp_path / "c").rank("q", IDS, IDS)
    assert first.batches
    second = CountingOracle(ScoresOracle(SCORES))
    r2 = Reranker(second, sorter="heapsort", k=5, cache=str(tmp_path / "c")).rank("q", IDS, IDS)
    assert second.batches == [] and r2.cost.inferences == 0
    assert r2.doc_ids == r1.doc_ids


def test_key_includes_backend_and_order(tmp_path):
    cache = DiskCache(tmp_path)
    key = ("simulated/x", b"q" * 16, b"a" * 16, b"b" * 16)
    cache.set(key, Judgment("A", 1.5))
    assert cache.get(key) == Judgment("A", 1.5)
    assert cache.get(("simulated/x", b"q" * 16, b"b" * 16, b"a" * 16)) is None
    assert cache.get(("simulated/y", b"q" * 16, b"a" * 16, b"b" * 16)) is None
    cache.set(("n", b"q", b"a", b"b"), Judgment(None, None, parsed=False))  # never read back as a tie
    assert cache.get(("n", b"q", b"a", b"b")) is None


def test_other_query_or_text_misses():
    oracle = CountingOracle(ScoresOracle(SCORES))
    cache = MemoryCache()
    Reranker(oracle, k=3, cache=cache).rank("q", IDS[:5], IDS[:5], qid="q1")
    paid = len(oracle.batches)
    Reranker(oracle, k=3, cache=cache).rank("q", IDS[:5], IDS[:5], qid="q2")  # another qid
    assert len(oracle.batches) > paid


WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from prp import Reranker, ScoresOracle
    qid = sys.argv[1]
    ids = [f"d{{i}}" for i in range(40)]
    scores = {{d: float((i * 37) % 11) for i, d in enumerate(ids)}}
    Reranker(ScoresOracle(scores), sorter="allpair", k=5, batch_size=8,
             cache=sys.argv[2]).rank("query " + qid, ids, ids, qid=qid)
""")


def test_two_processes_sharing_a_directory_lose_nothing(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    directory = tmp_path / "shared-cache"
    procs = [subprocess.Popen([sys.executable, str(script), qid, str(directory)]) for qid in ("A", "B")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(DiskCache(directory)) == 2 * 2 * (40 * 39 // 2)  # both queries, all prompts
    ids = [f"d{i}" for i in range(40)]
    scores = {d: float((i * 37) % 11) for i, d in enumerate(ids)}
    oracle = CountingOracle(ScoresOracle(scores))
    rr = Reranker(oracle, sorter="allpair", k=5, cache=directory)
    from prp import RankRequest
    results = rr.rank_many([RankRequest("query " + q, ids, ids, qid=q) for q in ("A", "B")])
    assert oracle.batches == [] and results[0].run_cost.cache_hits == 2 * 40 * 39 // 2


def test_unusable_directory_is_a_clear_error(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(CacheError, match="cannot open the judgment cache"):
        Reranker(ScoresOracle(SCORES), cache=not_a_dir)


def test_make_cache():
    assert isinstance(make_cache(None), MemoryCache)
    assert make_cache(False) is None
    with pytest.raises(TypeError, match="cache must be"):
        make_cache(42)


def test_unusable_directory_can_warn_and_go_on(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.warns(RuntimeWarning, match="going on without a cache"):
        rr = Reranker(ScoresOracle(SCORES), k=3, cache=not_a_dir, on_cache_error="warn")
    oracle = CountingOracle(ScoresOracle(SCORES))
    rr.oracle = oracle
    first = rr.rank("q", IDS[:6], IDS[:6])
    second = rr.rank("q", IDS[:6], IDS[:6])
    assert first.doc_ids == second.doc_ids and second.cost.prompts == first.cost.prompts > 0


def test_cache_broken_after_opening_is_a_clear_error(tmp_path):
    cache = DiskCache(tmp_path / "c")
    cache._cache.close()
    import shutil
    shutil.rmtree(tmp_path / "c")
    (tmp_path / "c").write_text("not a directory any more")
    with pytest.raises(CacheError, match="cannot (read|write) the judgment cache"):
        Reranker(ScoresOracle(SCORES), k=3, cache=cache).rank("q", IDS[:6], IDS[:6])


def test_prompt_key_matches_the_scheduler():
    from prp.cache import prompt_key
    from prp.types import Prompt

    class Recording(MemoryCache):
        def __init__(self):
            super().__init__()
            self.keys = []

        def get(self, key):
            self.keys.append(key)
            return super().get(key)

    cache = Recording()
    oracle = ScoresOracle({"a": 1.0, "b": 2.0})
    Reranker(oracle, sorter="allpair", k=2, cache=cache).rank("q", ["ta", "tb"], ["a", "b"], qid="Q")
    expected = {prompt_key(oracle.name, "id", Prompt("Q", "q", f, "", s, ""))
                for f, s in (("a", "b"), ("b", "a"))}
    assert set(cache.keys) == expected


@pytest.mark.parametrize("seed", range(20))
def test_memory_cache_set_many_is_set_for_each_in_order(seed):
    """A judged batch stored at once leaves the cache as storing its answers one by one: the
    same entries in the same least-recently-used order, under any bound (keys held already too)."""
    import random

    rng = random.Random(seed)
    bound = rng.choice([None, 1, 3, 10])
    one, many = MemoryCache(bound), MemoryCache(bound)
    for _ in range(30):
        keys = rng.sample(range(25), rng.randint(1, 6))
        items = [(("judge", b"q", bytes([k]), b"x"), Judgment("A", float(rng.random()))) for k in keys]
        for key, judgment in items:
            one.set(key, judgment)
        many.set_many(items)
        if rng.random() < 0.3:
            key = ("judge", b"q", bytes([rng.randrange(25)]), b"x")
            assert one.get(key) == many.get(key)
        assert list(one._data.items()) == list(many._data.items())
