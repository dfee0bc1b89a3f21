"""The Redis judgment cache against a real redis-server on loopback (skipped when the server is
not installed): round trips, the unparsed rule, and replicas sharing judgments."""

from __future__ import annotations

import shutil

import pytest
from conftest import CountingOracle, free_port, score_docs

pytest.importorskip("redis")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server)", allow_module_level=True)

from redis_server import RedisServer  # noqa: E402

from prp import Judgment, RankRequest, Reranker, ScoresOracle  # noqa: E402
from prp.cache import CacheError, DiskCache, TieredCache, make_cache  # noqa: E402
from prp.cache_redis import RedisCache  # noqa: E402


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def fresh(redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


def test_round_trip_and_the_unparsed_rule(fresh):
    cache = RedisCache(fresh)
    key = ("judge", b"q" * 16, b"a" * 16, b"b" * 16)
    assert cache.get(key) is None
    cache.set(key, Judgment("A", 1.25))
    cache.set(key[:3] + (b"c" * 16,), Judgment(None, None))
    cache.set(key[:3] + (b"d" * 16,), Judgment(None, None, parsed=False))
    assert cache.get(key) == Judgment("A", 1.25)
    assert cache.get(key[:3] + (b"c" * 16,)) == Judgment(None, None)
    assert cache.get(key[:3] + (b"d" * 16,)) is None  # never read back as a decided tie
    other = RedisCache(fresh)  # another process's view: the same server
    assert other.get(key) == Judgment("A", 1.25)
    odd = key[:3] + (b"e" * 16,)
    cache._redis.set(cache.prefix + DiskCache._disk_key(odd), b"garbage")  # not ours: a miss
    assert cache.get(odd) is None
    cache.close()


def test_replicas_share_judgments(fresh):
    ids, scores = score_docs(30, seed=3)
    req = RankRequest("query", [f"text {d}" for d in ids], ids, "q")
    one, two = CountingOracle(ScoresOracle(scores)), CountingOracle(ScoresOracle(scores))
    first = Reranker(one, k=10, batch_size=8, cache=fresh).rank(**vars(req))
    store = make_cache(fresh)
    assert isinstance(store, TieredCache) and len(store) == first.cost.prompts > 0
    second = Reranker(two, k=10, batch_size=8, cache=fresh).rank(**vars(req))
    assert second.doc_ids == first.doc_ids
    assert two.batches == [] and second.cost.prompts == 0
    assert second.cost.cache_hits == first.cost.unique_comparisons


def test_an_unreachable_server_is_a_clear_error():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(CacheError, match="cannot connect to the judgment cache at redis://127.0.0.1"):
        RedisCache(url)
    with pytest.warns(RuntimeWarning, match="going on without it"):
        cache = RedisCache(url, on_error="warn")
    assert cache.get(("j", b"q", b"a", b"b")) is None


def test_two_serve_replicas_share_a_redis_cache(fresh, tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from test_serve import Service

    a = Service(tmp_path, "--batch-size", "16", "--cache", fresh)
    b = Service(tmp_path, "--batch-size", "16", "--cache", fresh)
    try:
        body = {"query": "q2", "documents": [f"d{i}" for i in range(25)], "top_n": 5}
        first = httpx.post(a.url + "/v1/rerank", json=body, timeout=60).json()
        second = httpx.post(b.url + "/v1/rerank", json=body, timeout=60).json()
    finally:
        assert a.stop() == 0 and b.stop() == 0
    assert first["usage"]["prompts"] > 0 and second["usage"]["prompts"] == 0
    assert second["results"] == first["results"]
