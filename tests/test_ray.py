"""prp.ray and ``prp rerank --executor ray`` on a real local Ray cluster (``ray.init(num_cpus=2)``,
no mock of Ray), in the slow set, each test bounded: rankings and per-query counts equal to in
process on DL19 (perfect and noisy judges, 1 and 2 actors, both layouts); an actor killed
mid-job (nothing lost, no prompt judged twice); a dead judge stops the job in seconds; a Redis
cache shared by the actors (a second ranker pays only for new prompts); the CLI resumes after
its driver is killed, with output identical to an uninterrupted run's."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import free_port

pytest.importorskip("ray")
pytest.importorskip("pyarrow")

import ray  # noqa: E402
from ray_judges import judged, make  # noqa: E402

from prp.data import load_dataset  # noqa: E402
from prp.ray import rerank_dataset, total_ledger  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
NOISY = "noisy:scale=1,bias=1,noise=1,seed=3"


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs; its workers import this checkout and tests/ray_judges."""
    path = f"{ROOT}{os.pathsep}{ROOT / 'tests'}"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def dl19(dl19_dir):
    requests, _ = load_dataset(dl19_dir, depth=30)
    return requests, str(dl19_dir / "qrels.txt")


def rows_layout(requests):
    return [{"qid": r.qid, "query": r.query, "docid": d, "text": t, "rank": i}
            for r in requests for i, (d, t) in enumerate(zip(r.doc_ids, r.docs, strict=True), 1)]


def query_layout(requests):
    return [{"qid": r.qid, "query": r.query, "docids": list(r.doc_ids), "texts": list(r.docs)}
            for r in requests]


def in_process(requests, qrels, tmp_path, **options):
    return {r.qid: r for r in make(qrels, str(tmp_path / "ref"), **options).rank_many(requests)}


def by_qid(rows, layout):
    if layout == "queries":
        return {row["qid"]: (list(row["docids"]), row["ledger"]) for row in rows}
    out = {}
    for row in sorted(rows, key=lambda r: (r["qid"], r["rank"])):
        out.setdefault(row["qid"], ([], row["ledger"]))[0].append(row["docid"])
    return out


COUNTS = ("comparisons", "unique_comparisons", "prompts", "virtual_prompts", "cache_hits", "rounds")


@pytest.mark.timeout(480)
@pytest.mark.parametrize("judge", ["perfect", NOISY])
def test_rankings_and_counts_equal_in_process_on_1_and_2_actors(cluster, dl19, tmp_path, judge):
    requests, qrels = dl19[0][:6], dl19[1]
    expected = in_process(requests, qrels, tmp_path, judge=judge)
    for actors, layout in ((1, "rows"), (2, "queries")):
        items = rows_layout(requests) if layout == "rows" else query_layout(requests)
        ranked = rerank_dataset(ray.data.from_items(items), functools.partial(
            make, qrels, str(tmp_path / f"trace{actors}"), judge=judge), concurrency=actors, batch_size=2,
            num_partitions=2).take_all()
        got = by_qid(ranked, layout)
        assert set(got) == set(expected)
        for qid, (docids, ledger_json) in got.items():
            assert docids == expected[qid].doc_ids, (actors, qid)
            ledger = total_ledger([ledger_json])
            assert {c: getattr(ledger, c) for c in COUNTS} == \
                {c: getattr(expected[qid].cost, c) for c in COUNTS}, (actors, qid)
        if layout == "rows":  # every candidate once, with its first-stage rank and a decreasing score
            firsts = {(r["qid"], r["docid"]): r["first_stage_rank"] for r in ranked}
            assert firsts == {(r["qid"], r["docid"]): r["rank"] for r in rows_layout(requests)}
            assert all(r["score"] == 31 - r["rank"] for r in ranked)


def _run_in_thread(fn):
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


@pytest.mark.timeout(480)
def test_an_actor_killed_mid_job_loses_nothing_and_judges_no_prompt_twice(cluster, dl19, tmp_path):
    requests, qrels = dl19[0][:8], dl19[1]
    expected = in_process(requests, qrels, tmp_path)
    trace, shards = tmp_path / "trace", tmp_path / "shards"
    make_reranker = functools.partial(make, qrels, str(trace), cache=str(shards), delay=0.03)
    ds = rerank_dataset(ray.data.from_items(query_layout(requests)), make_reranker, concurrency=2,
                        batch_size=2)
    thread, box = _run_in_thread(ds.take_all)
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        for log in trace.glob("judged-*.log"):
            if len(log.read_text().splitlines()) >= 40:  # this actor is mid-call
                victim = int(log.stem.split("-")[1])
                break
        time.sleep(0.02)
    assert victim is not None, "no actor got far enough to be killed"
    os.kill(victim, signal.SIGKILL)
    thread.join(200)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    got = by_qid(box["result"], "queries")
    assert {qid: docids for qid, (docids, _) in got.items()} == {q: r.doc_ids for q, r in expected.items()}
    pids = {int(p.name.split("-")[1]) for p in trace.glob("pid-*")}
    assert len(pids) >= 3 and victim in pids  # Ray started a new actor in its place
    prompts = judged(trace)
    twice = [p for p, n in Counter(prompts).items() if n > 1]
    assert twice == []  # the retried call was served from the shards for everything judged
    assert len(prompts) == sum(r.cost.prompts for r in expected.values())


@pytest.mark.timeout(240)
def test_a_dead_judge_stops_the_job_in_seconds(cluster, dl19, tmp_path):
    requests, qrels = dl19[0][:8], dl19[1]
    ds = rerank_dataset(ray.data.from_items(query_layout(requests)),
                        functools.partial(make, qrels, str(tmp_path / "t"), fail=True), concurrency=2,
                        batch_size=1)
    started = time.monotonic()
    with pytest.raises(Exception, match="judge server went away") as info:
        ds.take_all()
    assert time.monotonic() - started < 60
    assert "BackendError" in str(info.value)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    redis = pytest.importorskip("redis")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 30
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.timeout(480)
def test_actors_share_a_redis_cache_and_a_second_ranker_pays_only_for_new_prompts(cluster, dl19, redis_url,
                                                                                 tmp_path):
    requests, qrels = dl19[0][:8], dl19[1]
    items = query_layout(requests)
    jobs = {}
    for sorter in ("quicksort", "heapsort"):
        trace = tmp_path / sorter
        rows = rerank_dataset(ray.data.from_items(items), functools.partial(
            make, qrels, str(trace), sorter=sorter, cache=redis_url, delay=0.01), concurrency=2,
            batch_size=2).take_all()
        expected = in_process(requests, qrels, tmp_path, sorter=sorter)
        assert {r["qid"]: list(r["docids"]) for r in rows} == {q: r.doc_ids for q, r in expected.items()}
        jobs[sorter] = (judged(trace), total_ledger([r["ledger"] for r in rows]),
                        {p.name for p in trace.glob("judged-*.log")})
    (first, _, writers), (second, ledger, _) = jobs["quicksort"], jobs["heapsort"]
    assert len(writers) == 2  # both actors judged, into the one cache
    assert len(set(first)) == len(first) and len(set(second)) == len(second)
    assert set(first).isdisjoint(second)  # nothing judged by the first job was paid again
    assert ledger.cache_hits > 0 and len(second) == ledger.prompts < ledger.virtual_prompts


def _cli(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "prp.cli", "rerank", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.timeout(600)
def test_cli_resumes_after_its_driver_is_killed_with_the_same_output(cluster, dl19_dir, tmp_path):
    common = ["--input", str(dl19_dir / "bm25-top100.json"), "--depth", "50", "--judge", "perfect", "--qrels",
              str(dl19_dir / "qrels.txt"), "--format", "json", "--quiet"]
    reference = _cli([*common, "--output", str(tmp_path / "ref.trec")])
    assert reference.wait(120) == 0, reference.stderr.read()
    out, checkpoint = tmp_path / "ray.trec", tmp_path / "ck"
    ray_args = [*common, "--output", str(out), "--executor", "ray", "--ray-address", cluster,
                "--ray-batch-size", "1", "--checkpoint", str(checkpoint),
                "--cache-dir", str(tmp_path / "cache")]
    driver = _cli(ray_args)
    deadline = time.monotonic() + 120
    while (not list(checkpoint.glob("block-*.jsonl")) and time.monotonic() < deadline
           and driver.poll() is None):
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    finished = len(list(checkpoint.glob("block-*.jsonl")))
    assert finished >= 1 and not out.exists()
    rerun = _cli(ray_args)
    assert rerun.wait(200) == 0, rerun.stderr.read()
    err, summary = rerun.stderr.read(), json.loads(rerun.stdout.read())
    resumed = int(err.split(" queries resumed")[0].rsplit(" ", 1)[-1])
    assert finished <= resumed < 43 and summary["queries"] == 43
    assert out.read_bytes() == (tmp_path / "ref.trec").read_bytes()
    assert not checkpoint.exists()  # removed once the output is written
    ref_cost = json.loads(reference.stdout.read())["cost"]
    for name in ("comparisons", "virtual_prompts"):  # every query's ledger, resumed ones included
        assert summary["cost"][name] == ref_cost[name]


@pytest.mark.timeout(360)
def test_cli_parquet_in_and_out_with_a_shard_cache_a_rerun_pays_nothing(cluster, dl19, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    requests, qrels = dl19[0][:5], dl19[1]
    pq.write_table(pa.Table.from_pylist(rows_layout(requests)), tmp_path / "in.parquet")
    args = ["--input", str(tmp_path / "in.parquet"), "--judge", "perfect", "--qrels", qrels,
            "--format", "json", "--quiet", "--executor", "ray", "--ray-address", cluster,
            "--cache-dir", str(tmp_path / "cache"),
            "--output-format", "parquet"]
    costs = []
    for name in ("a", "b"):
        proc = _cli([*args, "--output", str(tmp_path / f"{name}.parquet")])
        assert proc.wait(150) == 0, proc.stderr.read()
        costs.append(json.loads(proc.stdout.read())["cost"])
    expected = in_process(requests, qrels, tmp_path)
    table = pq.read_table(tmp_path / "a.parquet").to_pylist()
    assert table == pq.read_table(tmp_path / "b.parquet").to_pylist()
    got = {}
    for row in table:
        got.setdefault(row["qid"], []).append(row["docid"])
    assert got == {q: r.doc_ids for q, r in expected.items()}
    assert costs[0]["prompts"] > 0 and costs[1]["prompts"] == 0 and costs[1]["cache_hits"] > 0
