"""The Ray Data stage: a class-based ``map_batches`` actor holding one long-lived engine.

Ray is imported when a function here is called, never when the module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prp.ray.rows import QUERY_COLUMNS, explode, group_rows, layout, ranked_row, request

if TYPE_CHECKING:
    from ray.data import Dataset

    from prp.reranker import Reranker

#: CPUs each actor asks Ray for. Half a core, so that on a small machine an actor pool never
#: takes every CPU and starves Ray Data's own read and transform tasks (on 2 cores, two actors of
#: one CPU each left none for them and a job hung).
DEFAULT_NUM_CPUS = 0.5
#: Queries in each actor call: ranked together on the actor's engine, sharing its batches; also
#: the unit Ray retries when an actor dies and the CLI's checkpoint unit.
DEFAULT_BATCH_SIZE = 64


def _output_schema(keep_texts: bool):  # noqa: ANN202
    import pyarrow as pa

    fields = [("qid", pa.string()), ("query", pa.string()), ("docids", pa.list_(pa.string())),
              ("first_stage_ranks", pa.list_(pa.int64())), ("scores", pa.list_(pa.float64())),
              ("cut", pa.bool_()), ("ledger", pa.string())]
    if keep_texts:
        fields.append(("texts", pa.list_(pa.string())))
    return pa.schema(fields)


class RerankActor:
    """One Ray Data actor: builds its reranker once (``make_reranker()``: the judge is loaded
    here, once per actor) and runs it on one :class:`~prp.engine.SyncEngine` for its whole life.
    Each call ranks its batch's queries as one request, so their prompts share batches."""

    def __init__(self, make_reranker: Callable[[], Reranker], keep_texts: bool = False) -> None:
        from prp.engine import SyncEngine
        from prp.reranker import Reranker

        reranker = make_reranker()
        if not isinstance(reranker, Reranker):
            raise TypeError(f"make_reranker must return a prp.Reranker, got {type(reranker).__name__}")
        self.reranker, self.keep_texts = reranker, keep_texts
        self.engine = SyncEngine(reranker)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist()
        results = self.engine.rank_many([request(row) for row in rows]) if rows else []
        out = [ranked_row(result, self.keep_texts) for result in results]
        return pa.Table.from_pylist(out, schema=_output_schema(self.keep_texts))

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            try:
                engine.close()
                self.reranker.close()
            except Exception:  # noqa: BLE001 - the actor is going away; nothing to report to
                pass


def _group(batch: Any) -> Any:
    """``map_groups``: the rows of one qid as one query row."""
    import pyarrow as pa

    row = group_rows(batch.to_pylist())
    return pa.Table.from_pylist([row], schema=pa.schema(
        [("qid", pa.string()), ("query", pa.string()), ("docids", pa.list_(pa.string())),
         ("texts", pa.list_(pa.string()))]))


def _explode(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_pylist(explode(batch.to_pylist()))


def to_queries(ds: Dataset, *, num_cpus: float = DEFAULT_NUM_CPUS, num_partitions: int | None = None
               ) -> Dataset:
    """One row per query (``qid``, ``query``, ``docids``, ``texts``) from a dataset in either
    layout; rows of one candidate each are grouped by ``qid`` (a hash shuffle into
    ``num_partitions``, Ray's default when None), ordered by ``rank``."""
    kind = layout(ds.columns())
    if kind == "queries":
        return ds.select_columns(list(QUERY_COLUMNS))
    return ds.groupby("qid", num_partitions=num_partitions).map_groups(
        _group, batch_format="pyarrow", num_cpus=num_cpus)


def rerank_dataset(ds: Dataset, make_reranker: Callable[[], Reranker], *, concurrency: int = 1,
                   num_cpus: float = DEFAULT_NUM_CPUS, num_gpus: float = 0,
                   batch_size: int = DEFAULT_BATCH_SIZE, keep_texts: bool | None = None,
                   num_partitions: int | None = None, **ray_remote_args: Any) -> Dataset:
    """The reranked dataset of ``ds`` (see :mod:`prp.ray`)."""
    kind = layout(ds.columns())
    for name, value in (("concurrency", concurrency), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not callable(make_reranker):
        raise TypeError("make_reranker must be a callable returning a prp.Reranker (it runs in each actor)")
    keep = kind == "rows" if keep_texts is None else keep_texts
    if kind == "rows" and not keep:
        raise ValueError("one row per candidate comes back with its text: keep_texts must be True or None")
    from ray.data import ActorPoolStrategy

    ranked = to_queries(ds, num_cpus=num_cpus, num_partitions=num_partitions).map_batches(
        RerankActor, fn_constructor_args=(make_reranker, keep), batch_size=batch_size,
        batch_format="pyarrow", compute=ActorPoolStrategy(size=concurrency), num_cpus=num_cpus,
        num_gpus=num_gpus, **ray_remote_args)
    if kind == "rows":
        return ranked.map_batches(_explode, batch_format="pyarrow", num_cpus=num_cpus)
    return ranked
