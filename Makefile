# heatctl: `make demo` and `make test` each build their own virtual environment from python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/heatctl demo

# Two runs: everything in parallel on both cores, then the few tests that measure real-time
# behaviour alone (marker `serial`), so that the rest of the suite's CPU load cannot decide them.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --maxfail=50 -m "not serial"
	$(BIN)/python -m pytest -q -m serial

schema: $(STAMP)
	$(BIN)/heatctl schema > config/site-config.schema.json

# The quick benchmarks (a few minutes together); the long ones (bench_scale, bench_year, bench_soak,
# bench_fleet, bench_daemon) run by hand: each file's docstring gives its command and duration.
bench: $(STAMP)
	$(BIN)/python bench/bench_step.py
	$(BIN)/python bench/bench_modbus.py
	$(BIN)/python bench/bench_ipmi.py
	$(BIN)/python bench/bench_plan.py
	$(BIN)/python bench/bench_plan_daemon.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
