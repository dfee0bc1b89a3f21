"""The ``prp`` command line. Exit codes: 0 ok, 2 bad input, 3 backend failure, 4 budget exhausted
(``prp rerank --max-inferences``: the output is written, some queries were cut)."""

from __future__ import annotations

import argparse
import sys

from prp.cache import CacheError
from prp.cli import bench, calibrate, calibrate_oracle, evaluate, plan, rerank, simulate
from prp.cli.helptext import HelpFormatter
from prp.oracles.base import BackendError

EXIT_OK, EXIT_BAD_INPUT, EXIT_BACKEND = 0, 2, 3
EXIT_BUDGET = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prp", description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (rerank, evaluate, bench, plan, simulate, calibrate, calibrate_oracle):
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, CacheError) as exc:
        print(f"prp {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BackendError as exc:
        print(f"prp {args.command}: backend failure: {exc}", file=sys.stderr)
        return EXIT_BACKEND
