"""``prp bench``: effectiveness and cost of every sorter x batch size on your candidates.

For each (sorter, batch size) it reranks the first ``--queries`` queries of the input (the
first-stage top ``--depth``) with the judge of ``--judge`` and reports nDCG@10 and MRR@10
(RR with rel >= 2, ir-measures), the per-query means of the cost ledger, the latency model's
``predicted_seconds`` and the measured wall seconds per query. Rules:

* **Input.** ``--data DIR`` (the TREC DL layout: ``bm25-top100.json``, ``qrels.txt``), or
  ``--input FILE --qrels QRELS``: any candidates file ``prp rerank --input`` takes (candidates
  JSONL, or a retrieve_results JSON list) with TREC qrels (``qid 0 docid grade`` lines). Queries
  the qrels do not judge are named in one ``warning:`` line (see :mod:`prp.cli.grid`).
* **Counts are standalone.** Every run starts with an empty in-memory cache of its own, so its
  ``inferences`` are what that sorter x B costs alone, whatever ran before it
  (``virtual_inferences``: the same schedule with no cache at all). The grid runs on
  :mod:`prp.grid`, as ``prp simulate`` and the cost planner do.
* **Replay.** ``--cache-dir`` is a persistent judgment store shared by all runs (and with
  ``prp rerank --cache-dir``: same keys), the second layer under each run's memory cache
  (:class:`~prp.cache.TieredCache`, ``replay=True``). A prompt it holds is replayed, not judged,
  so each run only pays for pairs no earlier run judged: ``physical_inferences`` /
  ``physical_prompts`` are what reached the judge (counted by the engine's ``on_inference``
  hook). A replayed prompt is charged estimated prompt tokens (the text estimate, scaled by the
  reported/estimated ratio of the prompts judged so far), so the predictions hardly depend on
  what was replayed (for simulated judges: not at all).
* **Time.** ``measured_seconds`` is the run's wall time per query on this machine (replayed
  prompts cost almost nothing, so under replay it measures only the physical work);
  ``predicted_seconds`` the ledger's under ``--latency`` for the standalone schedule, and
  ``physical_predicted_seconds`` the latency model for the physical batches only.

* **Budgets.** ``--budgets 100,300,600`` runs every sorter x ``--orders`` x B once per
  per-query prompt budget (the ``budget`` column; ``active`` plans to it, other sorters are cut);
  ``--orders both,random`` compares the prompt orders, ``--debias`` as in ``prp rerank``.

Writes into ``--out``: ``report.md`` (command line, settings, the table), ``results.json``
(settings and every row) and, with matplotlib, ``frontier.png`` (nDCG@10 against inferences per
query: the cost/quality frontier), ``inferences_vs_batch.png`` and, with ``--budgets``,
``ndcg_vs_prompts.png`` (nDCG@10 against prompts per query, a line per sorter x orders) and
``ndcg_vs_tokens.png`` (the same lines against input tokens per query: the axis on which pair,
set and list questions compare, a set or a list being one prompt of many passages).
Exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from cost.model import LatencyModel
from prp.cache import make_cache
from prp.cli import backends, grid
from prp.cli.collector import input_loaded
from prp.cli.helptext import HelpFormatter
from prp.cli.tables import aligned, cell
from prp.evaluate import mean_measure
from prp.grid import CellRun
from prp.spec import split_specs

MEASURES = {"ndcg@10": "nDCG@10", "mrr@10": "RR(rel=2)@10"}
LEDGER = ("comparisons", "unique_comparisons", "cache_hits", "prompts", "inferences",
          "virtual_inferences", "rounds", "input_tokens", "cached_tokens", "output_tokens", "unparsed",
          "predicted_seconds")
COLUMNS = (("sorter", "sorter"), ("B", "batch_size"), ("orders", "orders"), ("budget", "budget"),
           ("cmp", "comparisons"), ("prompts", "prompts"),
           ("infer", "inferences"), ("v.infer", "virtual_inferences"), ("phys.infer", "physical_inferences"),
           ("rounds", "rounds"), ("in_tok", "input_tokens"), ("cached", "cached_tokens"),
           ("out_tok", "output_tokens"),
           ("pred_s", "predicted_seconds"), ("meas_s", "measured_seconds"),
           ("ndcg@10", "ndcg@10"), ("mrr@10", "mrr@10"))


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bench", help="nDCG, MRR and cost of sorters x batch sizes, with plots",
                            description=__doc__, formatter_class=HelpFormatter)
    grid.add_grid_args(p, sorters="heapsort,quicksort,quicksort:pivot=median-of-three,mergesort",
                       batch_sizes=[1, 4, 8, 16], judge="llama.cpp")
    p.add_argument("--cache-dir", default=None,
                   help="persistent judgment store shared by every run (replay: pay each pair once; "
                        "default: in memory)")
    p.add_argument("--out", default="bench-report", help="report directory (created)")
    p.set_defaults(run=run, bench_parser=p)


def run(args: argparse.Namespace) -> int:
    grid.check(args)
    requests, qrels, judge = grid.load(args)
    store = make_cache(args.cache_dir) if args.cache_dir else None
    rows = []
    try:
        with input_loaded():  # the collector stops rescanning the loaded input
            for done in grid.run(args, requests, judge, store=store):
                rows.append(last := grid.priced(row(done, qrels), args.price_table))
                print(f"prp bench: {last['sorter']} orders={last['orders']} budget={last['budget']} "
                      f"B={last['batch_size']}: {last['inferences']:.1f} inferences/query, "
                      f"nDCG@10 {last['ndcg@10']:.3f}", file=sys.stderr, flush=True)
    finally:
        if hasattr(store, "close"):
            store.close()
    baseline = {name: round(mean_measure(m, {r.qid: list(r.doc_ids) for r in requests}, qrels), 4)
                for name, m in MEASURES.items()}
    print(format_table(rows))
    write_report(Path(args.out), args, rows, baseline)
    return 0


def row(run: CellRun, qrels: dict) -> dict:
    """One cell's row of per-query means, physical counts and metrics."""
    c, means, queries = run.cell, run.cost.per_query(), len(run.results)
    rankings = {r.qid: r.doc_ids for r in run.results}
    out: dict = {"sorter": c.sorter, "batch_size": c.batch_size, "orders": c.orders,
                 "budget": "-" if c.budget is None else c.budget.to_json(), "queries": queries}
    out.update({name: round(means[name], 4) for name in LEDGER})
    out.update({"physical_inferences": round(run.physical.inferences / queries, 4),
                "physical_prompts": round(run.physical.prompts / queries, 4),
                "physical_predicted_seconds": round(run.physical.predicted_seconds / queries, 4),
                "measured_seconds": round(means["wall_seconds"], 6)})
    out.update({name: round(mean_measure(m, rankings, qrels), 4) for name, m in MEASURES.items()})
    return out


# --- output ---------------------------------------------------------------------------------

def _cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    return [h for h, _ in COLUMNS], [[cell(row[key]) for _, key in COLUMNS] for row in rows]


def format_table(rows: list[dict]) -> str:
    """The rows as aligned text columns (what ``prp bench`` prints)."""
    heads, cells = _cells(rows)
    return aligned([heads, *cells])


def markdown_table(rows: list[dict]) -> str:
    heads, cells = _cells(rows)
    lines = ["| " + " | ".join(heads) + " |", "|---|" + "---:|" * (len(heads) - 1)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])


def command_line(args: argparse.Namespace) -> str:
    """An equivalent ``prp bench`` command with every option explicit."""
    words = ["prp", "bench"]
    for action in args.bench_parser._actions:
        value = getattr(args, action.dest, None)
        if action.dest == "in_flight" and value is None:
            value = "all"
        if not action.option_strings or action.dest == "help" or value in (None, ""):
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a switch
            words += [flag] if value else []
        elif action.dest == "judge":
            words += [flag, backends.judge_spec(args)]
        elif action.dest == "base_url":  # repeatable
            words += [w for url in value for w in (flag, url)]
        elif isinstance(value, LatencyModel):
            words += [flag, ",".join(str(x) for x in (value.alpha, value.beta, value.gamma, value.delta)
                                      [: 4 if value.delta else 3])]
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join(words)


def settings(args: argparse.Namespace) -> dict:
    latency = args.latency
    return {"data": args.data, "input": args.input, "qrels": args.qrels, "queries": args.queries,
            "depth": args.depth, "k": args.k,
            "sorters": split_specs(args.sorters), "batch_sizes": args.batch_sizes,
            "orders": args.orders, "aggregate": args.aggregate,
            "budgets": args.budgets and [b.to_json() for b in args.budgets],
            "debias": args.debias, "infer": args.infer,
            "in_flight": "all" if args.in_flight is None else args.in_flight,
            "concurrency": args.concurrency, "seed": args.seed, "cache_dir": args.cache_dir,
            "judge": backends.backend_label(args),
            "latency": {"alpha": latency.alpha, "beta": latency.beta, "gamma": latency.gamma,
                        "delta": latency.delta}}


def write_report(out: Path, args: argparse.Namespace, rows: list[dict], baseline: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": command_line(args), "settings": settings(args), "baseline": baseline}
    (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    plots = write_plots(out, rows, baseline)
    lines = ["# prp bench", "", "```", meta["command"], "```", "", "## Settings", ""]
    lines += [f"* {key}: {value}" for key, value in meta["settings"].items()]
    lines += [f"* first-stage order: nDCG@10 {baseline['ndcg@10']:.4f}, MRR@10 {baseline['mrr@10']:.4f}",
              "", "## Runs (per-query means)", "", markdown_table(rows), "",
              "`infer`: inferences of the run alone (its own cache); `v.infer`: the same with no cache;"
              " `phys.infer`: what reached the judge (the rest was replayed from `--cache-dir`);"
              " `pred_s`: the latency model; `meas_s`: wall seconds per query on this machine.", ""]
    lines += [f"![{name}]({name})" for name in plots] or ["(plots skipped: matplotlib is not installed)"]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- plots ----------------------------------------------------------------------------------

def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _wide(values: list[float]) -> bool:
    """Worth a log axis: all positive and spanning more than a factor of 20."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20


def write_plots(out: Path, rows: list[dict], baseline: dict) -> list[str]:
    """``frontier.png`` and ``inferences_vs_batch.png``; [] when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("prp bench: matplotlib is not installed: no plots", file=sys.stderr)
        return []
    plot_frontier(out / "frontier.png", rows, baseline)
    plot_batches(out / "inferences_vs_batch.png", rows)
    names = ["frontier.png", "inferences_vs_batch.png"]
    if any(row["budget"] != "-" for row in rows):
        plot_budgets(out / "ndcg_vs_prompts.png", rows, baseline)
        plot_budgets(out / "ndcg_vs_tokens.png", rows, baseline, x="input_tokens")
        names += ["ndcg_vs_prompts.png", "ndcg_vs_tokens.png"]
    return names


def _sorters(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(row["sorter"] for row in rows))


def pareto(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both fewer inferences and higher nDCG@10, by inferences."""
    best, front = -1.0, []
    for row in sorted(rows, key=lambda r: (r["inferences"], -r["ndcg@10"])):
        if row["ndcg@10"] > best:
            front.append(row)
            best = row["ndcg@10"]
    return front


def plot_frontier(path: Path, rows: list[dict], baseline: dict) -> None:
    """nDCG@10 against inferences per query: a point per sorter x B (colour and marker: sorter,
    label: B), the dashed frontier of rows nothing beats on both, first-stage nDCG in the title."""
    fig, ax = _figure()
    styles = {s: (f"C{i % 10}", "osD^vP*Xh<>"[i % 11]) for i, s in enumerate(_sorters(rows))}
    points: dict[tuple[str, float, float], list[int]] = {}  # equal points share one label
    for row in rows:
        points.setdefault((row["sorter"], row["inferences"], row["ndcg@10"]), []).append(row["batch_size"])
    for i, ((sorter, x, y), sizes) in enumerate(sorted(points.items(), key=lambda kv: kv[0][1:])):
        colour, marker = styles[sorter]
        ax.scatter(x, y, color=colour, marker=marker, zorder=3)
        ax.annotate("B=" + ",".join(map(str, sizes)), (x, y), textcoords="offset points", color=colour,
                    xytext=(4, 3 + 7 * (i % 2)), fontsize=7)  # staggered: neighbours do not overlap
    front = pareto(rows)
    xs = [r["inferences"] for r in front] + [max(r["inferences"] for r in rows)]
    ys = [r["ndcg@10"] for r in front] + [front[-1]["ndcg@10"]]
    ax.plot(xs, ys, color="grey", linestyle="--", drawstyle="steps-post", label="frontier", zorder=2)
    for sorter, (colour, marker) in styles.items():
        ax.scatter([], [], color=colour, marker=marker, label=sorter)
    if _wide([r["inferences"] for r in rows]):
        ax.set_xscale("log")
    low, high = min(r["ndcg@10"] for r in rows), max(r["ndcg@10"] for r in rows)
    pad = max(0.01, (high - low) * 0.15)
    ax.set_ylim(low - pad, high + pad)
    ax.set(xlabel="inferences per query", ylabel="nDCG@10",
           title=f"Cost / quality frontier (first-stage nDCG@10 {baseline['ndcg@10']:.3f})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def plot_budgets(path: Path, rows: list[dict], baseline: dict, x: str = "prompts") -> None:
    """nDCG@10 against ``x`` per query (``prompts`` or ``input_tokens``): a line
    per sorter x orders x B through its budgets."""
    from matplotlib import colormaps

    colours = colormaps["tab20"]
    fig, ax = _figure()
    lines: dict[tuple[str, str, int], list[dict]] = {}
    for row in rows:
        lines.setdefault((row["sorter"], row["orders"], row["batch_size"]), []).append(row)
    sizes = {key[2] for key in lines}
    for i, ((sorter, orders, size), mine) in enumerate(lines.items()):
        mine.sort(key=lambda r: r[x])
        label = f"{sorter}, {orders}" + (f", B={size}" if len(sizes) > 1 else "")
        ax.plot([r[x] for r in mine], [r["ndcg@10"] for r in mine], label=label,
                color=colours(i % 20), marker="osD^vP*Xh<>"[i % 11],
                linestyle="-" if orders == "both" else "--")
    ax.axhline(baseline["ndcg@10"], color="grey", linestyle=":", label="first stage")
    if x == "prompts":
        ax.set(xlabel="prompts per query", ylabel="nDCG@10", title="Quality per prompt (per-query budgets)")
    else:
        if _wide([r[x] for r in rows]):
            ax.set_xscale("log")
        ax.set(xlabel="input tokens per query", ylabel="nDCG@10",
               title="Quality per input token (per-query budgets)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path)


def plot_batches(path: Path, rows: list[dict]) -> None:
    fig, ax = _figure()
    for sorter in _sorters(rows):
        mine = sorted((r for r in rows if r["sorter"] == sorter), key=lambda r: r["batch_size"])
        ax.plot([r["batch_size"] for r in mine], [r["inferences"] for r in mine], marker="o", label=sorter)
    sizes = sorted({r["batch_size"] for r in rows})
    if sizes[-1] / sizes[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, labels=[str(b) for b in sizes])
    ax.set_xticks([], minor=True)
    if _wide([r["inferences"] for r in rows]):
        ax.set_yscale("log")
    ax.set(xlabel="batch size B (prompts per inference)", ylabel="inferences per query",
           title="Inferences against batch size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
