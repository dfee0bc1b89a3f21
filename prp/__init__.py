"""prp: rerank search results with an LLM judging pairs of passages, paying per inference.

    from prp import Reranker
    result = Reranker(oracle, sorter="quicksort", k=10, batch_size=8).rank(query, docs)

Your own data: :func:`load_candidates` (candidates JSONL, or a retrieve_results JSON list),
:func:`load_run_candidates` (a TREC run with its topics and passages), :func:`load_qrels` (TREC
qrels), then :func:`trec_run_lines` to write the reranked run and :func:`mean_measure` /
:func:`evaluate_run` to score it::

    import prp
    requests = prp.load_candidates("candidates.jsonl")
    judge = prp.PerfectOracle(prp.load_qrels("qrels.txt"))
    results = prp.Reranker(judge, k=10).rank_many(requests)
    print(prp.mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, judge.qrels))
"""

from cost.ledger import Ledger
from cost.model import LatencyModel
from prp.cache import CacheError, DiskCache, MemoryCache
from prp.data import DataError, load_candidates, load_qrels, load_run_candidates, trec_run_lines
from prp.evaluate import evaluate_run, mean_measure
from prp.judgment import UnparsedError, UnparsedWarning
from prp.oracles import Backend, BackendError, NoisyOracle, PerfectOracle, ScoresOracle
from prp.oracles.simulated import NoJudgmentsWarning
from prp.reranker import Reranker
from prp.result import RankedDoc, RankedResult
from prp.types import BatchResult, Choice, Judgment, Prompt, RankRequest, ShapedPrompt

__all__ = [
    "Backend", "BackendError", "BatchResult", "CacheError", "Choice", "DataError", "DiskCache", "Judgment",
    "LatencyModel", "Ledger", "MemoryCache", "NoJudgmentsWarning", "NoisyOracle", "PerfectOracle",
    "Prompt", "RankRequest", "RankedDoc", "RankedResult", "Reranker", "ScoresOracle", "ShapedPrompt",
    "UnparsedError",
    "UnparsedWarning", "evaluate_run", "load_candidates", "load_qrels", "load_run_candidates",
    "mean_measure", "trec_run_lines",
]
__version__ = "0.1.0"
