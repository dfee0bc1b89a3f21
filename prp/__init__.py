"""prp: rerank search results with an LLM judging pairs of passages, paying per inference.

    from prp import Reranker
    result = Reranker(oracle, sorter="quicksort", k=10, batch_size=8).rank(query, docs)
"""

from cost.ledger import Ledger
from cost.model import LatencyModel
from prp.cache import CacheError, DiskCache, MemoryCache
from prp.judgment import UnparsedError, UnparsedWarning
from prp.oracles import Backend, BackendError, NoisyOracle, PerfectOracle, ScoresOracle
from prp.reranker import Reranker
from prp.result import RankedDoc, RankedResult
from prp.types import BatchResult, Judgment, Prompt, RankRequest

__all__ = [
    "Backend", "BackendError", "BatchResult", "CacheError", "DiskCache", "Judgment",
    "LatencyModel", "Ledger", "MemoryCache", "NoisyOracle", "PerfectOracle", "Prompt",
    "RankRequest", "RankedDoc", "RankedResult", "Reranker", "ScoresOracle", "UnparsedError",
    "UnparsedWarning",
]
__version__ = "0.1.0"
