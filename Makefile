# cdcd: make demo | make test | make lint | make testenv-up / testenv-down
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

# Starts throwaway PostgreSQL and Kafka, runs cdcd, makes a few changes, shows the
# change events as they arrive, then stops everything it started.
demo: venv
	$(PY) scripts/demo.py

# Installs everything, starts the test servers, runs the whole suite, stops the servers
# (even when tests fail).
test: venv
	scripts/testenv up
	rc=0; $(PY) -m pytest -ra $(PYTEST_ARGS) || rc=$$?; scripts/testenv down; exit $$rc

lint: venv
	$(VENV)/bin/ruff check cdcd tests scripts benchmarks
	$(VENV)/bin/mypy cdcd

testenv-up:
	scripts/testenv up

testenv-down:
	scripts/testenv down

testenv-status:
	scripts/testenv status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
