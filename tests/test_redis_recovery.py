"""The Redis tier rides out a server that dies and comes back (a real ``redis-server`` killed and
started again on the same port): reads miss without touching the dead server, writes wait in a
bounded queue and are written back, the cache reconnects by itself, and its health and errors
are reported. Skipped when redis-server is not installed."""

from __future__ import annotations

import shutil
import signal
import time

import pytest
from conftest import free_port

pytest.importorskip("redis")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server)", allow_module_level=True)

from redis_server import RedisServer  # noqa: E402

from prp import Judgment  # noqa: E402
from prp.cache import CacheError, DiskCache, TieredCache, add_cache_error_hook, cache_health, make_cache  # noqa: E402
from prp.cache_redis import RedisCache, redact  # noqa: E402

RECOVERY_SECONDS = 5  # the bound: sharing resumes within 5 s of Redis coming back


def key(i: int) -> tuple[str, bytes, bytes, bytes]:
    return "judge", b"q" * 16, i.to_bytes(16, "big"), b"b" * 16


def stored(server: RedisServer, cache: RedisCache, i: int) -> bytes | None:
    return server.client().get(cache.prefix + DiskCache._disk_key(key(i)))


def wait_up(cache: object) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while cache_health(cache)[0] != "ok":
        assert time.monotonic() < deadline, f"not back within {RECOVERY_SECONDS} s: {cache_health(cache)}"
        time.sleep(0.02)


@pytest.fixture
def server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_down_reads_miss_writes_queue_and_come_back(server):
    cache = RedisCache(server.url)
    seen: list[str] = []
    cache.error_hooks.append(seen.append)
    cache.set(key(0), Judgment("A", 1.5))
    assert cache.get(key(0)) == Judgment("A", 1.5) and cache.health() == ("ok", "")
    server.kill()
    assert cache.get(key(0)) is None  # a miss, not an error
    for _ in range(200):
        assert cache.get(key(0)) is None
    assert cache.errors["get"] == 1  # only the first read tried the dead server
    state, reason = cache.health()
    assert state == "degraded" and server.url in reason and "ConnectionError" in reason
    for i in range(1, 5):
        cache.set(key(i), Judgment("B", -float(i)))
    cache.set(key(1), Judgment("B", -1.0))  # judged twice: queued once
    assert cache.pending == 4 and cache.errors["set"] == 0  # queued, not tried
    assert "4 judgments queued for write-back (at most 50000), 0 dropped" in cache.health()[1]
    server.start()  # empty: no persistence
    wait_up(cache)
    assert [stored(server, cache, i) for i in range(1, 5)] == [b"B|-1.0|", b"B|-2.0|", b"B|-3.0|", b"B|-4.0|"]
    assert cache.pending == 0 and cache.written_back == 4
    assert cache.get(key(3)) == Judgment("B", -3.0) and stored(server, cache, 0) is None
    cache.set(key(9), Judgment("A", 2.0))  # up again: written at once
    assert stored(server, cache, 9) == b"A|2.0|"
    assert seen == ["get"] + ["reconnect"] * (len(seen) - 1) and cache.errors["reconnect"] == len(seen) - 1
    cache.close()


def test_the_write_back_queue_is_bounded_and_keeps_the_newest(server):
    cache = RedisCache(server.url, max_pending=3)
    server.kill()
    cache.get(key(0))
    for i in range(1, 6):
        cache.set(key(i), Judgment("A", float(i)))
    assert cache.pending == 3 and cache.dropped == 2
    assert "3 judgments queued for write-back (at most 3), 2 dropped" in cache.health()[1]
    server.start()
    wait_up(cache)
    assert [stored(server, cache, i) is not None for i in range(1, 6)] == [False, False, True, True, True]
    cache.close()


def test_a_hung_server_costs_one_timeout_then_reads_miss_at_once(server):
    cache = RedisCache(server.url, timeout=0.2)
    cache.set(key(1), Judgment("A", 1.0))
    server.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        assert cache.get(key(1)) is None  # one socket timeout, then down
        for _ in range(50):
            assert cache.get(key(1)) is None
        cache.set(key(2), Judgment("B", -1.0))
        assert cache.errors["get"] == 1 and cache.pending == 1
        assert "TimeoutError" in cache.health()[1]
    finally:
        server.proc.send_signal(signal.SIGCONT)
    wait_up(cache)
    assert stored(server, cache, 2) == b"B|-1.0|" and cache.get(key(1)) == Judgment("A", 1.0)
    cache.close()


def test_an_idle_cache_survives_a_restart_without_going_down(server):
    cache = RedisCache(server.url)
    assert cache.get(key(0)) is None  # a pooled connection now exists
    server.kill()
    server.start()
    server.client().set(cache.prefix + DiskCache._disk_key(key(1)), b"A|0.5|")
    assert cache.get(key(1)) == Judgment("A", 0.5)  # the stale connection retried once, at once
    assert sum(cache.errors.values()) == 0 and cache.health()[0] == "ok"
    cache.close()


def test_an_error_the_server_answers_fails_that_call_only(server):
    cache = RedisCache(server.url)
    server.client().lpush(cache.prefix + DiskCache._disk_key(key(0)), b"x")  # a list, not a string
    assert cache.get(key(0)) is None
    assert cache.errors == {"get": 1} and cache.health() == ("ok", "")
    cache.set(key(1), Judgment(None, 0.0))
    assert cache.get(key(1)) == Judgment(None, 0.0)
    cache.close()


def test_warn_starts_down_and_connects_when_the_server_appears(tmp_path):
    server = RedisServer(tmp_path)
    with pytest.warns(RuntimeWarning, match="reconnecting in the background"):
        cache = RedisCache(server.url, on_error="warn")
    assert cache.health()[0] == "degraded" and cache.errors["connect"] == 1
    cache.set(key(1), Judgment("A", 1.0))
    server.start()
    try:
        wait_up(cache)
        assert stored(server, cache, 1) == b"A|1.0|"
        cache.close()
    finally:
        server.stop()


def test_close_while_down_stops_reconnecting(server):
    cache = RedisCache(server.url)
    server.kill()
    cache.set(key(1), Judgment("A", 1.0))
    thread = cache._thread
    assert thread is not None and thread.is_alive()
    cache.close()  # tries once to write back (refused), warns in the log, stops the thread
    assert not thread.is_alive() and cache.pending == 1


def test_tiers_report_health_and_errors_through_make_cache(server):
    cache = make_cache(server.url)
    assert isinstance(cache, TieredCache)
    seen: list[str] = []
    assert add_cache_error_hook(cache, seen.append) == 1  # the Redis tier; memory has no errors
    cache.set(key(1), Judgment("A", 1.0))
    server.kill()
    assert cache.get(key(1)) == Judgment("A", 1.0)  # the memory tier still answers
    cache.set(key(2), Judgment("B", -1.0))  # memory now, Redis later
    assert cache.get(key(2)) == Judgment("B", -1.0) and seen[0] == "set" and set(seen) <= {"set", "reconnect"}
    assert cache_health(cache)[0] == "degraded"
    with pytest.raises(CacheError, match="cannot count the judgments"):
        len(cache)
    server.start()
    wait_up(cache)
    assert len(cache) == 1  # key 2, written back (key 1 died with the server)
    cache.close()
    assert cache_health(make_cache(None)) == ("ok", "")


def test_urls_in_messages_never_show_a_password():
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    assert redact(url) == url.replace("s3cret", "***")
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(CacheError) as info:
        RedisCache(url)
    assert "s3cret" not in str(info.value) and "user:***@127.0.0.1" in str(info.value)


@pytest.mark.parametrize(("field", "value"), [("timeout", 0), ("retry_cap", float("nan")),
                                              ("max_pending", -1), ("max_pending", 1.5)])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        RedisCache("redis://127.0.0.1:1/0", **{field: value})
