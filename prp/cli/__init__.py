"""The ``prp`` command line. Exit codes: 0 ok, 2 bad input, 3 backend failure."""

from __future__ import annotations

import argparse
import sys

from prp.cache import CacheError
from prp.cli import calibrate, simulate
from prp.oracles.base import BackendError

EXIT_OK, EXIT_BAD_INPUT, EXIT_BACKEND = 0, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    simulate.add_parser(commands)
    calibrate.add_parser(commands)
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
