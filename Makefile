# Set-up and the two commands of the README. Everything runs inside .venv, created on first use.
# `make docs` builds the documentation site into site/ (offline, --strict).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: demo test venv docs bench-quick bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch/torchvision are pinned in pyproject.toml (2.14.1 / 0.29.1).
	$(BIN)/python -m pip install -q -e ".[test,export,timm,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rsdistill demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=15

# --strict: a broken link, a page missing from the nav or an API name the reference cannot find
# fails the build. Nothing is fetched (the theme and the search index are local).
docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict --site-dir site

# torchdistill, the peer the benchmark measures (peer_ratio), is for the benchmark only: installed
# without its dependencies into $(BENCH_DEPS) (the pinned torch/torchvision stay as they are), never
# into the venv. Without a registry the benchmark still runs and reports peer_ratio as null.
BENCH_DEPS := .bench-deps
TORCHDISTILL_VERSION := 1.1.5
PEER_STAMP := $(BENCH_DEPS)/.torchdistill-$(TORCHDISTILL_VERSION)

$(PEER_STAMP): | $(STAMP)
	$(BIN)/python -m pip install -q --retries 1 --no-deps --upgrade --target $(BENCH_DEPS) \
		torchdistill==$(TORCHDISTILL_VERSION) && touch $@ \
		|| echo "torchdistill was not installed: the benchmark reports peer_ratio as null"

bench-quick: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/run.py --quick --peer-deps $(BENCH_DEPS)

bench: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/run.py --peer-deps $(BENCH_DEPS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache $(BENCH_DEPS) site
