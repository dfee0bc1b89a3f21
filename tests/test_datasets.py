"""Topics and passages through the real ir_datasets, on datasets registered here from local files
(nothing can be downloaded): ``load_ir_dataset`` against the TREC-files reader, scoreddocs,
errors, and ``prp rerank --dataset`` (the README commands, on DL19 bound to the MS MARCO id)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from doc_examples import ROOT, doc_commands

ir_datasets = pytest.importorskip("ir_datasets")

from ir_datasets.datasets.base import Dataset  # noqa: E402
from ir_datasets.formats import TrecScoredDocs, TsvDocs, TsvQueries  # noqa: E402
from ir_datasets.util import LocalDownload  # noqa: E402

from prp.cli import main  # noqa: E402
from prp.data import DataError, load_candidates, load_run_candidates  # noqa: E402
from prp.datasets import load_ir_dataset  # noqa: E402

DOCS = {"d1": "bees make honey from nectar", "d2": "wasps build paper nests", "d3": "honey keeps for years",
        "d4": "ants farm aphids"}
TOPICS = {"q1": "how do bees make honey", "q2": "what do ants eat"}
RUN = [("q1", "d2", 1, 3.0), ("q1", "d1", 2, 2.0), ("q1", "d3", 3, 1.0), ("q2", "d4", 1, 1.5),
       ("q2", "d1", 2, 0.5)]
QRELS = {"q1": {"d1": 3, "d3": 1}, "q2": {"d4": 2}}


def local_dataset(directory: Path, docs: dict[str, str], topics: dict[str, str],
                  scored: list[tuple[str, str, int, float]] | None = None) -> Dataset:
    """An ir_datasets dataset read from TSV files written to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in docs.items()))
    (directory / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in topics.items()))
    parts = [TsvDocs(LocalDownload(directory / "docs.tsv")),
             TsvQueries(LocalDownload(directory / "queries.tsv"))]
    if scored is not None:
        (directory / "scored.run").write_text("".join(f"{q} Q0 {d} {r} {s} bm25\n" for q, d, r, s in scored))
        parts.append(TrecScoredDocs(LocalDownload(directory / "scored.run")))
    return Dataset(*parts)


def register(dataset: Dataset) -> str:
    name = f"prp-test/{uuid.uuid4().hex}"
    ir_datasets.registry.register(name, dataset)
    return name


@pytest.fixture
def tiny(tmp_path: Path) -> dict:
    """A registered dataset with scoreddocs, plus the same data as TREC files prp reads itself."""
    name = register(local_dataset(tmp_path / "ds", DOCS, TOPICS, scored=RUN[::-1]))
    files = {"run": tmp_path / "first.run", "topics": tmp_path / "topics.tsv",
             "docs": tmp_path / "docs.jsonl", "qrels": tmp_path / "qrels.txt"}
    files["run"].write_text("".join(f"{q} Q0 {d} {r} {s} bm25\n" for q, d, r, s in RUN))
    files["topics"].write_text("".join(f"{q}\t{t}\n" for q, t in TOPICS.items()))
    files["docs"].write_text("".join(json.dumps({"docid": d, "text": t}) + "\n" for d, t in DOCS.items()))
    files["qrels"].write_text("".join(f"{q} 0 {d} {g}\n" for q, grades in QRELS.items()
                                      for d, g in grades.items()))
    return {"id": name, **files}


def test_dataset_texts_match_the_same_data_read_from_files(tiny):
    got = load_ir_dataset(tiny["id"], tiny["run"])
    assert got == load_run_candidates(tiny["run"], tiny["topics"], tiny["docs"])
    assert [(r.qid, r.query, list(r.doc_ids)) for r in got] == [
        ("q1", TOPICS["q1"], ["d2", "d1", "d3"]), ("q2", TOPICS["q2"], ["d4", "d1"])]
    assert list(got[0].docs) == [DOCS["d2"], DOCS["d1"], DOCS["d3"]]


def test_without_a_run_the_dataset_scoreddocs_are_the_candidates(tiny):
    got = load_ir_dataset(tiny["id"])  # scoreddocs were written in reverse: read by score
    assert [(r.qid, list(r.doc_ids)) for r in got] == [("q2", ["d4", "d1"]), ("q1", ["d2", "d1", "d3"])]


def test_errors_name_the_dataset_or_the_run_line(tiny, tmp_path):
    with pytest.raises(DataError, match="no dataset 'nope/none'"):
        load_ir_dataset("nope/none", tiny["run"])
    bad = tmp_path / "bad.run"
    bad.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d9 2 1.0 x\n")
    with pytest.raises(DataError, match=r"bad.run:2: docid 'd9' is not in the docs"):
        load_ir_dataset(tiny["id"], bad)
    bad.write_text("q7 Q0 d1 1 2.0 x\n")
    with pytest.raises(DataError, match=r"bad.run:1: query 'q7' is not in dataset"):
        load_ir_dataset(tiny["id"], bad)
    no_scored = register(local_dataset(tmp_path / "plain", DOCS, TOPICS))
    with pytest.raises(DataError, match="no first-stage results"):
        load_ir_dataset(no_scored)


def test_cli_dataset_input_gives_the_same_run_as_the_files(tiny, tmp_path, capsys):
    judge = ["--judge", "perfect", "--qrels", str(tiny["qrels"]), "--k", "2", "--quiet"]
    via_dataset, via_files = tmp_path / "a.trec", tmp_path / "b.trec"
    assert main(["rerank", "--dataset", tiny["id"], "--run", str(tiny["run"]), "--output", str(via_dataset),
                 *judge]) == 0
    assert main(["rerank", "--run", str(tiny["run"]), "--topics", str(tiny["topics"]), "--docs",
                 str(tiny["docs"]), "--output", str(via_files), *judge]) == 0
    assert via_dataset.read_text() == via_files.read_text()
    assert via_dataset.read_text().splitlines()[0].split()[:3] == ["q1", "Q0", "d1"]
    capsys.readouterr()
    assert main(["rerank", "--dataset", tiny["id"], "--input", str(tiny["docs"]), "--output", "-"]) == 2
    assert "--dataset reads topics and passages from ir_datasets" in capsys.readouterr().err
    assert main(["rerank", "--dataset", "nope/none", "--output", "-", *judge]) == 2
    assert "ir_datasets has no dataset 'nope/none'" in capsys.readouterr().err


def test_docs_commands_on_dl19_bound_to_the_msmarco_id(dl19_dir, tmp_path, monkeypatch, capsys):
    """The README's commands as written, with the MS MARCO id bound to a local dataset built from
    the DL19 files: the same run as ``--input bm25-top100.json``, and nDCG@10 0.8922."""
    requests = load_candidates(dl19_dir / "bm25-top100.json")
    docs = {d: t for r in requests for d, t in zip(r.doc_ids, r.docs, strict=True)}
    topics = dict(line.split("\t", 1) for line in (dl19_dir / "topics.tsv").read_text().splitlines() if line)
    monkeypatch.setitem(ir_datasets.registry._registered, "msmarco-passage/trec-dl-2019/judged",
                        local_dataset(tmp_path / "dl19", docs, topics))
    rerank, evaluate = doc_commands("datasets")
    assert rerank[:3] == ["prp", "rerank", "--dataset"] and evaluate[:2] == ["prp", "evaluate"]
    out = tmp_path / "reranked.trec"
    monkeypatch.chdir(ROOT)
    assert main([str(out) if a == "reranked.trec" else a for a in rerank[1:]] + ["--quiet"]) == 0
    reference = tmp_path / "reference.trec"
    assert main(["rerank", "--input", str(dl19_dir / "bm25-top100.json"), "--judge", "perfect", "--qrels",
                 str(dl19_dir / "qrels.txt"), "--output", str(reference), "--quiet"]) == 0
    assert sorted(out.read_text().splitlines()) == sorted(reference.read_text().splitlines())
    capsys.readouterr()
    assert main([str(out) if a == "reranked.trec" else a for a in evaluate[1:]] + ["--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean"]["nDCG@10"] == pytest.approx(0.8922, abs=5e-5)
