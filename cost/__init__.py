"""Cost accounting for prp: the ledger of what a ranking paid, and the latency model."""

from cost.ledger import Ledger
from cost.model import DEFAULT_LATENCY, LatencyModel, estimate_tokens

__all__ = ["DEFAULT_LATENCY", "Ledger", "LatencyModel", "estimate_tokens"]
