"""The ``prp`` command line. Exit codes: 0 ok, 2 bad input, 3 backend failure, 4 budget exhausted
(``prp rerank --max-inferences``: the output is written, some queries were cut), 5 too many
unparsed answers (``prp rerank --max-unparsed``), 130 interrupted (Ctrl-C or SIGTERM: one line on
stderr, no traceback)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings

from prp.cache import CacheError
from prp.cli import bench, calibrate, calibrate_oracle, evaluate, plan, rerank, serve, simulate
from prp.cli.exits import (  # noqa: F401  (re-exported: prp.cli.EXIT_* as before)
    EXIT_BACKEND,
    EXIT_BAD_INPUT,
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNPARSED,
)
from prp.cli.helptext import HelpFormatter
from prp.judgment import UnparsedError
from prp.oracles.base import BackendError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prp", description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (rerank, evaluate, bench, plan, simulate, calibrate, calibrate_oracle, serve):
        command.add_parser(commands)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM: stop where the main thread is; a second signal is ignored, so the
    run can unwind (cancel its requests, close the cache) and say what it kept."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C and SIGTERM raise KeyboardInterrupt wherever the main thread is (also inside a
    # judge that never yields to the event loop; asyncio keeps a handler that is not Python's
    # default one). Only the main thread may set handlers.
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, _interrupt)
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        print(f"prp {args.command}: warning: {message}", file=sys.stderr)  # one line, no source

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return args.run(args)
    except (ValueError, TypeError, OSError, CacheError) as exc:
        print(f"prp {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BackendError as exc:
        print(f"prp {args.command}: backend failure: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except UnparsedError as exc:
        print(f"prp {args.command}: too many unparsed answers: {exc}", file=sys.stderr)
        return EXIT_UNPARSED
    except (KeyboardInterrupt, rerank.Interrupted) as exc:
        detail = str(exc) or "interrupted"
        print(f"prp {args.command}: {detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

