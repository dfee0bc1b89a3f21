"""The progress bar of ``prp rerank``: it moves while every query is in flight, counts cache hits,
and ends at what was done."""

from __future__ import annotations

import json

from conftest import CountingOracle, score_docs

from prp import RankRequest, Reranker, ScoresOracle
from prp.cache import MemoryCache
from prp.cli import main
from prp.cli import rerank as rerank_cli
from prp.cli.progress import Progress
from prp.engine import SyncEngine


class Snapshots(CountingOracle):
    """Records the progress counters as each inference starts."""

    def __init__(self, inner, progress: Progress):
        super().__init__(inner)
        self.progress, self.seen = progress, []

    async def judge(self, prompts):
        self.seen.append((self.progress.done, self.progress.done_queries))
        return await super().judge(prompts)


def _requests(n_queries: int = 3, n: int = 12):
    ids, scores = score_docs(n, seed=4)
    return [RankRequest(f"q{i}", ids, ids, qid=f"q{i}") for i in range(n_queries)], scores


def test_the_bar_moves_while_every_query_is_in_flight(capsys):
    reqs, scores = _requests()
    progress = Progress(estimate=100, queries=len(reqs), enabled=True)
    judge = Snapshots(ScoresOracle(scores), progress)
    with SyncEngine(Reranker(judge, k=3, batch_size=4, in_flight=None), **progress.hooks()) as engine:
        results = engine.rank_many(reqs)
    progress.close()
    done = [d for d, _ in judge.seen]
    assert len(done) == len(judge.batches) > 3
    assert done == [sum(judge.batches[:i]) for i in range(len(judge.batches))]  # one step per inference
    assert {queries for _, queries in judge.seen} == {0}  # no query had finished meanwhile
    assert progress.done == progress.prompts == sum(r.cost.prompts for r in results)
    assert progress.inferences == len(judge.batches) and progress.done_queries == 3
    err = capsys.readouterr().err
    assert f"{progress.done}/{progress.done}" in err  # the bar ends at what was done
    assert "queries 3/3" in err and "<" in err  # tqdm's elapsed<remaining (the ETA)


def test_cache_hits_count_as_prompts_done():
    reqs, scores = _requests(n_queries=2)
    cache = MemoryCache()
    first = Reranker(ScoresOracle(scores), k=3, batch_size=4, cache=cache).rank_many(reqs)
    progress = Progress(estimate=10, queries=2, enabled=False)
    judge = CountingOracle(ScoresOracle(scores))
    with SyncEngine(Reranker(judge, k=3, batch_size=4, cache=cache), **progress.hooks()) as engine:
        engine.rank_many(reqs)
    assert judge.batches == [] and progress.inferences == 0
    assert progress.cached == progress.done == sum(r.cost.prompts for r in first)


def test_rerank_draws_prompts_out_of_the_planners_estimate(capsys, monkeypatch, tmp_path):
    ids, scores = score_docs(20, seed=1)
    grades = {d: int(scores[d] * 4) for d in ids}
    cands = tmp_path / "c.jsonl"
    cands.write_text("".join(json.dumps({"qid": q, "query": f"query {q}", "candidates": [
        {"docid": d, "text": f"text {d}"} for d in ids]}) + "\n" for q in ("q1", "q2")))
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"{q} 0 {d} {g}\n" for q in ("q1", "q2") for d, g in grades.items()))
    estimates = []
    real = rerank_cli.Progress

    def spy(estimate, queries, enabled):
        estimates.append((estimate, queries, enabled))
        return real(estimate, queries, enabled)

    monkeypatch.setattr(rerank_cli, "Progress", spy)
    monkeypatch.setattr(rerank_cli.sys.stderr, "isatty", lambda: True)
    code = main(["rerank", "--input", str(cands), "--judge", "noisy:bias=0.5,noise=1,seed=0",
                 "--qrels", str(qrels),
                 "--k", "5", "--depth", "20",
                 "--output", str(tmp_path / "out.run"), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    (estimate, queries, enabled), = estimates
    assert enabled and queries == 2
    assert main(["rerank", "--input", str(cands), "--k", "5", "--depth", "20", "--dry-run",
                 "--format", "json"]) == 0
    assert estimate == json.loads(capsys.readouterr().out)["total"]["prompts"]  # the dry run's figure
    assert 0.5 < summary["cost"]["prompts"] / estimate < 2  # an estimate, of the right size
    done = summary["cost"]["prompts"]
    assert f"{done}/{done}" in captured.err
