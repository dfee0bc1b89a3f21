"""MkDocs hooks (``hooks:`` in mkdocs.yml): the pages generated from the code at every build.

Rules: nothing here is checked in as output, so a reference page cannot drift from the code.

* ``reference/cli.md`` - every ``prp`` command's ``--help``, from :func:`prp.cli.build_parser`
  (the parsers the command itself runs), at a fixed width of 100 columns.
* ``reference/http-api.md`` and ``reference/openapi.json`` - the OpenAPI document of the FastAPI
  app of ``prp serve`` (:func:`prp.serve.app.create_app`, built around a simulated judge: the
  schema does not depend on the judge), rendered as tables, and the raw JSON beside it.
* ``plots/...`` - every PNG under ``bench/results/`` (the plots ``prp bench`` wrote), so the
  Benchmarks pages show the measured plots rather than copies of them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
HELP_COLUMNS = "100"


def on_files(files: Files, config) -> Files:  # noqa: ANN001 - mkdocs' hook signature
    for page, content in (("reference/cli.md", cli_reference()), ("reference/http-api.md", http_reference()),
                          ("reference/openapi.json", json.dumps(openapi(), indent=2) + "\n")):
        files.append(File.generated(config, page, content=content))
    for png in sorted((ROOT / "bench" / "results").rglob("*.png")):
        uri = "plots/" + png.relative_to(ROOT / "bench" / "results").as_posix()
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files


# --- the CLI reference ---------------------------------------------------------------------------

def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers in a private action: no public API
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    from prp.cli import build_parser
    from prp.cli.helptext import plain

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse wraps help at the terminal's width
    try:
        parser = build_parser()
        commands = _subcommands(parser)
        lines = ["# Command line", "",
                 "Generated at build time from the `prp` command's own parsers (`prp.cli.build_parser`): "
                 "each section is exactly what `prp COMMAND --help` prints. Exit codes are the same for "
                 "every command: see [Exit codes](exit-codes.md).", "",
                 "| command | what it does |", "|---|---|"]
        for name, sub in commands.items():
            first = plain((sub.description or "").strip().splitlines()[0]) if sub.description else ""
            summary = first.split(":", 1)[1].strip() if first.startswith(f"prp {name}:") else first
            lines.append(f"| [`prp {name}`](#prp-{name.replace('_', '-')}) | {summary} |")
        lines += ["", "## prp", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in commands.items():
            lines += [f"## prp {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
        return "\n".join(lines)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


# --- the HTTP API reference ----------------------------------------------------------------------

def openapi() -> dict:
    from prp import PerfectOracle, Reranker
    from prp.serve.app import create_app

    return create_app(Reranker(PerfectOracle({}), cache=False)).openapi()


def _type(schema: dict, spec: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s, spec) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}), spec)}"
    return schema.get("type", "any")


def _limits(schema: dict) -> str:
    words = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    def shown(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else str(value)

    found = [f"{sign} {shown(schema[key])}" for key, sign in words.items() if key in schema]
    for option in schema.get("anyOf", []):
        found += [f"{sign} {shown(option[key])}" for key, sign in words.items() if key in option]
    return ", ".join(found)


def http_reference() -> str:
    spec = openapi()
    lines = ["# HTTP API", "",
             "Generated at build time from the OpenAPI document of `prp serve`'s FastAPI app "
             "(`prp.serve.app.create_app`); the raw document is [openapi.json](openapi.json). "
             "How to call it from each client, with examples: the [Serving guide](../guides/serving.md).", "",
             f"Title: **{spec['info']['title']}**, OpenAPI {spec['openapi']}.", "",
             "## Endpoints", "", "| method | path | request body | responses |", "|---|---|---|---|"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            codes = ", ".join(f"{code} {r.get('description', '')}".strip()
                              for code, r in op["responses"].items())
            shown = _type(body, spec) if body else "-"
            lines.append(f"| `{method.upper()}` | `{path}` | {shown} | {codes} |")
    lines += ["", "## Schemas", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        lines += [f"### {name}", ""]
        props = schema.get("properties", {})
        if not props:
            lines += [f"Type: {schema.get('type', 'any')}.", ""]
            continue
        required = set(schema.get("required", []))
        lines += ["| field | type | required | default | limits |", "|---|---|---|---|---|"]
        for field, prop in props.items():
            default = json.dumps(prop["default"]) if "default" in prop else ""
            lines.append(f"| `{field}` | {_type(prop, spec)} | {'yes' if field in required else ''} | "
                         f"{default} | {_limits(prop)} |")
        lines.append("")
    return "\n".join(lines)
