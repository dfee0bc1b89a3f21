"""``prp serve``: the rerank service on uvicorn (``pip install prp[serve]``).

    prp serve --judge llama.cpp --model qwen2.5-coder-1.5b --port 8000
    prp serve --judge openai --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1
    prp serve --judge perfect --qrels qrels.txt --cache redis://127.0.0.1:6379/0

Every request in flight shares the judge's batches (one :class:`~prp.engine.Engine`). It speaks
Cohere v1 (also Jina and vLLM) on /v1/rerank and /rerank, Cohere v2 on /v2/rerank, and TEI's
/rerank (a body with "texts"); see :mod:`prp.serve.app` for the endpoints. Every body is checked
before it joins a batch (strict JSON, text that encodes as UTF-8, strict types, the limits
below): a bad one gets a 422 or 413 naming the field and index, and fails alone. Documents
without an "id" are known by their index (a simulated judge looks up "0", "1", ... in its qrels).
``--cache`` is ``memory`` (default), ``none``, a directory, or a
``redis://`` URL (a memory layer over Redis, so replicas share judgments). API keys: a comma-
separated list in the environment variable named by ``--api-keys-env`` (default
``PRP_API_KEYS``; unset or empty: no auth). SIGTERM or Ctrl-C: stop admitting (503), finish
the requests in flight, close the cache, exit 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from prp.aggregate import AGGREGATES, ORDERS
from prp.cli.argtypes import in_flight_or_all
from prp.cli.backends import SIMULATED, add_backend_args, backend_label, make_backend
from prp.cli.helptext import HelpFormatter


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="serve rerank over HTTP (Cohere v1/v2, Jina, vLLM, TEI shapes)",
                            description=__doc__, formatter_class=HelpFormatter)
    net = p.add_argument_group("service")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=8000)
    net.add_argument("--model-name", default=None, help="the model name the API reports (default: the judge)")
    net.add_argument("--api-keys-env", default="PRP_API_KEYS", metavar="VAR",
                     help="environment variable holding comma-separated API keys (default PRP_API_KEYS)")
    net.add_argument("--linger-ms", type=float, default=2.0,
                     help="the most an idle engine waits for requests on their way to share "
                          "its first batch; a lone request never waits (default 2)")
    net.add_argument("--max-documents", type=int, default=1000)
    net.add_argument("--max-document-chars", type=int, default=20_000)
    net.add_argument("--max-query-chars", type=int, default=4_000)
    net.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024)
    net.add_argument("--drain-seconds", type=float, default=60.0,
                     help="on SIGTERM, how long to wait for requests in flight (default 60)")
    net.add_argument("--log-level", default="warning",
                     choices=("critical", "error", "warning", "info", "debug", "trace"))
    rk = p.add_argument_group("ranking")
    rk.add_argument("--sorter", default="quicksort", help="default sorter spec (a request may name its own)")
    rk.add_argument("--k", type=int, default=10, help="default top-k (a request's top_n overrides it)")
    rk.add_argument("--batch-size", type=int, default=8, help="most prompts per inference (default 8)")
    rk.add_argument("--orders", choices=ORDERS, default="both")
    rk.add_argument("--aggregate", choices=AGGREGATES, default="auto")
    rk.add_argument("--cache", default="memory", metavar="memory|none|DIR|redis://...",
                    help="judgment cache (default: in memory)")
    rk.add_argument("--in-flight", type=in_flight_or_all, default="all", metavar="N|all",
                    help="most queries ranked at once (default all)")
    rk.add_argument("--concurrency", type=int, default=1, help="inferences in flight at once")
    rk.add_argument("--simulated-delay", type=float, default=0.0, metavar="SECONDS",
                    help="perfect/noisy: seconds each inference takes, standing in for an LLM's")
    add_backend_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from prp.serve.app import Limits, create_app
        from prp.serve.protocol import protocol_class
    except ImportError as exc:
        raise ValueError(f"prp serve needs the serve extra (pip install 'prp[serve]'): {exc}") from exc
    from prp.reranker import Reranker

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    for flag, value in (("--simulated-delay", args.simulated_delay), ("--linger-ms", args.linger_ms),
                        ("--drain-seconds", args.drain_seconds)):
        if not value >= 0:
            raise ValueError(f"{flag} must be >= 0, got {value}")
    if args.simulated_delay and args.judge not in SIMULATED:
        raise ValueError("--simulated-delay is for the simulated judges (perfect, noisy)")
    oracle = make_backend(args)
    if args.simulated_delay:
        oracle.delay = args.simulated_delay
    cache = {"memory": None, "none": False}.get(args.cache, args.cache)
    reranker = Reranker(oracle, sorter=args.sorter, k=args.k, batch_size=args.batch_size, orders=args.orders,
                        aggregate=args.aggregate, cache=cache, in_flight=args.in_flight,
                        concurrency=args.concurrency)
    keys = frozenset(k.strip() for k in os.environ.get(args.api_keys_env, "").split(",") if k.strip())
    try:
        limits = Limits(args.max_documents, args.max_document_chars, args.max_query_chars,
                        args.max_body_bytes)
    except ValueError as exc:  # "max_documents must be ...": name the flag
        raise ValueError("--" + str(exc).replace("_", "-")) from None
    app = create_app(reranker, model_name=args.model_name or backend_label(args), linger_ms=args.linger_ms,
                     api_keys=keys, limits=limits)
    # uvloop and httptools (the serve extra installs both) when importable, else asyncio and h11;
    # each response written in one piece (prp.serve.protocol). The access log is an INFO record:
    # below --log-level info it is not even asked for, once per request.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=args.drain_seconds, lifespan="on", loop="auto",
                            http=protocol_class(), access_log=args.log_level in ("info", "debug", "trace"))
    server = _Server(config)
    server.drain = app.state.drain
    # uvicorn handles SIGINT/SIGTERM while it serves and raises them again once it has shut
    # down; the graceful shutdown is the whole answer to them, so that second one is a no-op.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: None)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn could not start (an address it cannot bind): bad input
        if exc.code in (0, None):
            raise
        raise ValueError(f"cannot serve on {args.host}:{args.port} (uvicorn's reason above)") from None
    return 0


class _Server:
    """uvicorn's Server, told to stop admitting (503) the moment a shutdown signal arrives."""

    def __new__(cls, config):  # noqa: ANN001, ANN204
        import uvicorn

        class Server(uvicorn.Server):
            drain = None

            def handle_exit(self, sig, frame):  # noqa: ANN001, ANN202
                if self.drain is not None:
                    self.drain()
                super().handle_exit(sig, frame)

        return Server(config)
