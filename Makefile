# Set-up and the two commands of the README. Everything runs inside .venv, created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: demo test venv bench-quick bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch/torchvision are pinned in pyproject.toml (2.14.1 / 0.29.1).
	$(BIN)/python -m pip install -q -e ".[test,export,timm]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rsdistill demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=15

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
