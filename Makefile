# kube-reranker: every command a developer or CI needs. `make test` and `make demo` work on a fresh clone.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
export PATH := $(CURDIR)/build/tools/bin:$(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv tools images lint test test-fast demo bench bench-load bench-peak crds openapi docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv with every extra the tests and benchmarks use

# The demo needs only what a user installs to try the server and render manifests: no torch. Into the
# same .venv (a later `make venv` adds the rest); when .venv already holds everything, this is a no-op.
$(DEMO_STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,operator]'
	touch $(DEMO_STAMP)

tools: ## install helm, Prometheus/promtool and podman (cached under build/tools and the system)
	bash scripts/install-tools.sh

images: ## build the server, operator and export images with podman, no registry needed (tests/images runs them)
	bash scripts/build-images.sh

lint: $(STAMP) ## ruff over the whole tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv tools lint ## everything CI runs: deps, tools, lint, the whole suite
	$(BIN)/pytest

test-fast: $(STAMP) ## the suite without tests that start processes or export models
	$(BIN)/pytest -m "not slow"

demo: $(DEMO_STAMP) ## the main job, offline: build a model, serve it, rerank, render manifests (server+operator extras)
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

bench: venv ## side-by-side latency benchmark -> bench/results/*.json + PNG (takes minutes)
	$(BIN)/python -m bench.run

# The SLOs scaled to these 2-core machines, where no contender meets 1000 ms at k=40 (docs/capacity.md).
bench-load: venv ## open-loop capacity sweep at the SLO -> bench/results/load.json + load.png (about an hour)
	$(BIN)/python -m bench.loadsweep --slo chat-rag=4000 --slo snippets=600

bench-peak: venv ## int8 and fp32 at k=100 x 256 against this CPU's peaks, old vs new graph recipe -> bench/results/peak.json + PNG (minutes)
	$(BIN)/python -m bench.peak

openapi: $(STAMP) ## regenerate docs/openapi.json, the server API snapshot a test compares against
	$(BIN)/python -m reranker_server.openapi > docs/openapi.json

crds: $(STAMP) ## regenerate the CRD from the typed API (crds/ and the chart's crds/)
	$(BIN)/reranker-operator crd > crds/rerankerdeployments.kube-reranker.io.yaml
	cp crds/rerankerdeployments.kube-reranker.io.yaml charts/kube-reranker/crds/

docs: $(STAMP) ## regenerate the chart's values table and prometheus-adapter snippet
	$(BIN)/python scripts/gen-chart-docs.py
	$(BIN)/reranker-operator adapter-values > charts/kube-reranker/docs/prometheus-adapter-values.yaml

clean: ## remove the venv and build outputs
	rm -rf $(VENV) build .pytest_cache .ruff_cache
