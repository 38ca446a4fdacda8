# Two commands on a fresh Debian machine: `make repro` and `make test`. Both set everything up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := .dvc/plots/offline.html
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup flite npm repro test lint format bench clean

setup: flite $(STAMP) $(OFFLINE)

flite:
	@command -v flite >/dev/null 2>&1 || { \
	  echo "flite not found: installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq flite; }

npm:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "npm not found: installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; }

# vega, vega-lite and vega-embed from the npm registry, inlined into DVC's plots page template
$(OFFLINE): web/package-lock.json src/vqspeech/vega_page.py | npm $(STAMP)
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	$(BIN)/python -m vqspeech.vega_page web/node_modules $@

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

repro: setup
	dvc repro

test: setup lint
	python -m pytest

lint: $(STAMP)
	ruff check .
	ruff format --check .

format: $(STAMP)
	ruff check --fix .
	ruff format .

bench: setup
	python benchmarks/download.py
	python benchmarks/features.py
	python benchmarks/train.py
	python benchmarks/evaluate.py
	python benchmarks/wavenet.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
