"""``prp rerank --executor``: where the queries are ranked. ``process`` (the default) ranks them
on one engine in this process; ``ray`` on Ray Data actors (:mod:`prp.cli.rerank_ray`). Ray is
imported only when ``--executor ray`` runs."""

from __future__ import annotations

import argparse

from prp.ray.stage import DEFAULT_BATCH_SIZE, DEFAULT_NUM_CPUS

EXECUTORS = ("process", "ray")
#: the Ray options and their defaults (each needs --executor ray)
RAY_OPTIONS = {"ray_address": None, "ray_actors": 2, "ray_cpus": DEFAULT_NUM_CPUS, "ray_gpus": 0.0,
               "ray_batch_size": DEFAULT_BATCH_SIZE, "checkpoint": None}


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("executor")
    g.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="process: one engine in this process; ray: Ray Data actors, one engine each "
                        "(pip install 'prp[ray]') (default: process)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster to join, e.g. ray://head:10001 or auto (default: $RAY_ADDRESS, "
                        "else a local cluster started for the run)")
    g.add_argument("--ray-actors", type=int, default=RAY_OPTIONS["ray_actors"], metavar="N",
                   help="actors, each with its own judge and engine (default 2)")
    g.add_argument("--ray-cpus", type=float, default=DEFAULT_NUM_CPUS, metavar="CPUS",
                   help=f"CPUs each actor asks Ray for (default {DEFAULT_NUM_CPUS}: on a small machine a "
                        "whole CPU per actor starves Ray Data's other tasks)")
    g.add_argument("--ray-gpus", type=float, default=0.0, metavar="GPUS",
                   help="GPUs each actor asks for, for an in-process GPU judge (default 0)")
    g.add_argument("--ray-batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help=f"queries per actor call: ranked together, retried together, checkpointed together "
                        f"(default {DEFAULT_BATCH_SIZE})")
    g.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="ray: finished queries, one file per block, so a rerun of a killed job ranks only "
                        "the rest (default: OUTPUT.checkpoint; removed once the output is written)")


def check_executor_args(args: argparse.Namespace) -> None:
    """Options that need ``--executor ray``, and what the Ray executor cannot do (ValueError)."""
    if args.executor != "ray":
        for name, default in RAY_OPTIONS.items():
            if getattr(args, name) != default:
                raise ValueError(f"--{name.replace('_', '-')} needs --executor ray")
        if args.output_format == "parquet":
            raise ValueError("--output-format parquet needs --executor ray")
        return
    for name in ("ray_actors", "ray_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("ray_cpus", "ray_gpus"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.max_inferences is not None:
        raise ValueError("--max-inferences is a budget for one engine; with --executor ray each actor has "
                         "its own: give a per-query --budget instead")
    if args.dry_run:
        return
    if args.output == "-" and args.output_format == "parquet":
        raise ValueError("--output-format parquet writes a file: give --output PATH")
    if args.output == "-" and args.checkpoint is None:
        raise ValueError("--executor ray writing to stdout needs --checkpoint DIR (where finished "
                         "queries are kept)")
