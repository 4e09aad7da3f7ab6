# cdcd: make demo | make test | make test-long | make compat | make lint | make testenv-up / testenv-down
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: venv demo test test-unit lint testenv-up testenv-down testenv-status clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Starts the throwaway test servers (PostgreSQL, MariaDB, Kafka) unless they run, runs cdcd
# from PostgreSQL to Kafka, makes a few changes, shows the change events as they arrive,
# then stops the servers it started.
demo: venv
	$(PY) scripts/demo.py

# Installs everything, starts the test servers, runs the whole suite, stops the servers
# (even when tests fail, or when some servers failed to start).
test: venv
	scripts/testenv up || { scripts/testenv down; exit 1; }
	rc=0; $(PY) -m pytest -ra $(PYTEST_ARGS) || rc=$$?; scripts/testenv down; exit $$rc

# The long scenarios at full size (a server away for minutes, ...); `make test` runs
# them smaller, still proving the point.
.PHONY: test-long
test-long:
	CDCD_TEST_LONG=1 $(MAKE) test

# Benchmarks (benchmarks/README.md): cdcd, Debezium and the C tools on the same backlog.
# Starts the test servers if they are not running (and leaves them running); BENCH_ARGS
# passes options to benchmarks/run.py. Results: benchmarks/results/latest.json.
.PHONY: bench bench-quick
BENCH_ARGS ?=
bench: venv
	$(VENV)/bin/pip install -q -r benchmarks/requirements.txt
	scripts/testenv env >/dev/null 2>&1 || scripts/testenv up >/dev/null
	$(PY) benchmarks/run.py $(BENCH_ARGS)

bench-quick: venv
	$(VENV)/bin/pip install -q -r benchmarks/requirements.txt
	scripts/testenv env >/dev/null 2>&1 || scripts/testenv up >/dev/null
	$(PY) benchmarks/run.py --quick $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check cdcd tests scripts benchmarks
	$(VENV)/bin/mypy cdcd

# The differential harness against Debezium (tests/compat/, docs/compatibility.md): every
# case of each source, Debezium's embedded engine and cdcd on the same changes; the
# reports (differences, the table of types) in build/compat/. `make test` runs a subset.
.PHONY: compat
compat: venv
	scripts/testenv env >/dev/null 2>&1 || scripts/testenv up >/dev/null
	CDCD_COMPAT=full CDCD_COMPAT_OUT=build/compat $(PY) -m pytest tests/compat -ra $(PYTEST_ARGS)

testenv-up:
	scripts/testenv up

testenv-down:
	scripts/testenv down

testenv-status:
	scripts/testenv status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
