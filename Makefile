# Two commands on a fresh Debian machine: `make repro` and `make test`. Both set everything up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := .dvc/plots/offline.html
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup synth npm lock repro test lint format bench clean

setup: synth $(STAMP) $(OFFLINE)

# The built-in corpus's synthesizers (Debian main) and the LibriVox test recordings; apt-get
# runs only when one of them is missing.
APT_SYNTH := flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng \
  pocketsphinx-testdata
synth:
	@missing=$$(for p in $(APT_SYNTH); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing with apt-get:" $$missing; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

npm:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "npm not found: installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; }

# vega, vega-lite and vega-embed from the npm registry, inlined into DVC's plots page template
$(OFFLINE): web/package-lock.json src/vqspeech/report/vega_page.py | npm $(STAMP)
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	$(BIN)/python -m vqspeech.report.vega_page web/node_modules $@

# The environment is the committed lock (requirements.lock: every package pinned with hashes,
# but torch), installed by uv. torch is pinned in pyproject.toml (torch==2.13.0) and installed
# with the project: which build comes (the CPU wheel of a machine's local index, or PyPI's CUDA
# build) is the machine's. Where pip is configured with find-links (pip config), they are passed
# on to uv here, so no machine path lives in the repository.
UV_VERSION := 0.13.9
FIND_LINKS ?= $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^[^ ]*find-links='\([^']*\)'$$/\1/p" | head -n 1)
UV_FLAGS := --python $(BIN)/python $(foreach d,$(FIND_LINKS),--find-links $(d))
# Bytecode is written on first import, Python's default, even where the shell sets
# PYTHONDONTWRITEBYTECODE (CI, this machine): otherwise every stage and test process compiles what
# it imports from source, seconds each. Setup imports the heavy libraries once, so a `dvc repro`
# run outside make finds their bytecode too; compiling all of site-packages at install
# (uv --compile-bytecode) took 38 s, most of it modules no stage imports.
unexport PYTHONDONTWRITEBYTECODE
WARM_IMPORTS := torch, pandas, pyarrow.parquet, scipy.signal, scipy.optimize, sklearn.cluster, \
  sklearn.linear_model, sklearn.metrics, matplotlib.pyplot, dvclive, dvc.cli, typer, \
  praatio.textgrid, soundfile, soxr, yaml, pydantic, tqdm, librosa, pocketsphinx, pyroomacoustics
# librosa's numba functions compile on first use, about 30 s once per environment (cached beside
# them): beside the imports, on the core they leave idle, rather than in the features and
# synthesize stages
NUMBA_WARM := import numpy as np, librosa; librosa.filters.mel(sr=16000, n_fft=512); \
  librosa.feature.melspectrogram(y=np.zeros(1600, np.float32), sr=16000, n_fft=400); \
  librosa.griffinlim(np.ones((257, 8)), n_iter=1)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q $(UV_FLAGS) requirements.lock
	$(BIN)/uv pip install -q $(UV_FLAGS) -e .
	$(BIN)/python -c "$(NUMBA_WARM)" & warm=$$!; \
	  $(BIN)/python -c "import $(WARM_IMPORTS)" && wait $$warm
	touch $@

# Re-resolve the lock after changing dependencies in pyproject.toml (then `make setup`)
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
	  --no-emit-package torch $(foreach d,$(FIND_LINKS),--find-links $(d)) \
	  --custom-compile-command "make lock" -o requirements.lock

repro: setup
	dvc repro

# one pytest worker per core of a 2-core machine (pytest-xdist); `make test TEST_WORKERS=0` runs
# the suite in one process
TEST_WORKERS ?= 2
test: setup lint
	python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	ruff check .
	ruff format --check .

format: $(STAMP)
	ruff check --fix .
	ruff format .

bench: setup
	python benchmarks/download.py
	python benchmarks/corpus.py
	python benchmarks/forcealign.py
	python benchmarks/features.py
	python benchmarks/train.py
	python benchmarks/step.py
	python benchmarks/families.py
	python benchmarks/evaluate.py
	python benchmarks/memory.py
	python benchmarks/wavenet.py
	python benchmarks/long_utterance.py
	python benchmarks/long_evaluate.py
	python benchmarks/shared.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
	find src stages tests tools benchmarks -name __pycache__ -prune -exec rm -rf {} +
