# Two set-up commands on a fresh machine: `make demo` and `make test`. Each creates the
# virtualenv it needs (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# plugin packages shipped in this repository, installed beside rtsnn for the demo and the tests
PLUGINS := rtsnn-xylo rtsnn-brainflow rtsnn-dvs

.PHONY: demo test test-timing bench bench-peers soak clean

# .installed-run: rtsnn and its plugins (what `make demo` needs); .installed-dev: plus the test
# and cross-check dependencies (snnTorch, NEST, xylosim, ...) that `make test` needs.
$(BIN)/.installed-run: pyproject.toml $(foreach p,$(PLUGINS),plugins/$(p)/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e . $(foreach p,$(PLUGINS),-e plugins/$(p))
	touch $@

$(BIN)/.installed: $(BIN)/.installed-run
	# one resolver pass with the plugins, so that their pins (rtsnn-brainflow's setuptools < 81)
	# hold against what the dev extra pulls in (torch asks for setuptools >= 77)
	$(BIN)/python -m pip install -q -e '.[dev]' $(foreach p,$(PLUGINS),-e plugins/$(p))
	# Norse (a NIR cross-check): --no-deps, since its torchvision requirement pulls PyPI's CUDA
	# torchvision, whose operators do not load against the CPU torch pinned above
	$(BIN)/python -m pip install -q --no-deps 'norse==1.1.0'
	touch $@

demo: $(BIN)/.installed-run
	$(BIN)/rtsnn demo --duration 30

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

# The wall-clock bounds kept out of `make test` (they depend on the machine's load): the slow
# session tests, then the measured bounds of scripts/bench_timing_bounds.py (one JSON line).
TIMING_TESTS := tests/integration/test_session_lsl.py tests/stream/test_mqtt_sink.py tests/runtime/test_session_overrun.py
test-timing: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m slow $(TIMING_TESTS)
	$(BIN)/python scripts/bench_timing_bounds.py --strict

bench: $(BIN)/.installed
	$(BIN)/python scripts/bench_tick.py --peers none
	$(BIN)/rtsnn demo --duration 60 --json

# The peer simulators (snnTorch, Brian2, NEST) live in their own venv: Brian2 2.9 needs numpy < 2.4.
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/.installed: scripts/requirements-peers.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e . -r scripts/requirements-peers.txt
	# Norse without its torchvision requirement (PyPI's torchvision does not load on the CPU torch)
	$(BENCH_VENV)/bin/python -m pip install -q 'torch==2.13.0' 'nir>=1.0.8' 'nirtorch>=2.6'
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps 'norse==1.1.0'
	touch $@

bench-peers: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python scripts/bench_tick.py --json-out bench_tick.json

soak: $(BIN)/.installed
	$(BIN)/python scripts/bench_soak.py --duration 600

clean:
	rm -rf $(VENV) .venv-bench sessions .pytest_cache .hypothesis
