"""``prp serve``: the rerank service (FastAPI app in :mod:`prp.serve.app`; needs ``prp[serve]``)."""
