# consulpy developer commands. Everything runs from a virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install dev test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

dev: install
	$(VENV)/bin/consulpy agent -dev

lint: install
	$(VENV)/bin/ruff check consulpy tests bench
	$(VENV)/bin/mypy consulpy

test: lint
	$(PY) -m pytest -q

bench: install
	bash bench/setup.sh
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
