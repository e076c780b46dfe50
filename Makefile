# Casemate — two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export CASEMATE_DATA_DIR ?= $(CURDIR)/data
# Compiled detector databases, reused across process starts (detectors/_hs.py).
export CASEMATE_HS_CACHE_DIR ?= $(CURDIR)/.cache/hyperscan

.PHONY: run test install dev bench eval train-detectors services migrate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

## make run: quickstart on embedded defaults (SQLite, in-process limiter and cache, mock upstream without a key)
run: install
	$(VENV)/bin/casemate serve --demo

## make test: venv + dev dependencies, Redis and PostgreSQL reachable (started if installed), whole suite
test: dev services
	$(VENV)/bin/pytest -q

services:
	@bash scripts/ensure_services.sh

migrate: install
	$(VENV)/bin/casemate migrate

bench: dev
	$(PY) -m bench.run

eval: dev
	$(PY) -m bench.eval

train-detectors: dev
	$(PY) -m bench.train_injection

clean:
	rm -rf $(VENV) data .pytest_cache .cache
