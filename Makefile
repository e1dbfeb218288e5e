# Two set-up commands on a fresh machine: `make demo` and `make test`. Each creates the
# virtualenv it needs (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench bench-peers soak clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/rtsnn demo --duration 30

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python scripts/bench_tick.py --peers none
	$(BIN)/rtsnn demo --duration 60 --json

clean:
	rm -rf $(VENV) .venv-bench sessions .pytest_cache .hypothesis
