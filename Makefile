# Concept Workbench — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKSPACE ?= workspace
HOST ?= 127.0.0.1
PORT ?= 8501
# torch: the CPU wheel pinned here installs offline on the project's machines; a looser spec
# would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# pytest-xdist workers of `make test`: each test file runs whole on one worker (--dist loadfile), in
# collection order (--no-loadscope-reorder: tests/conftest.py puts the files with slow tests first).
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: demo test lint venv install install-test chromium bench clean help

help:
	@echo "make demo   - create .venv if missing, build the demo workspace, serve the UI on http://$(HOST):$(PORT)"
	@echo "make test   - create .venv if missing, install test needs (incl. Debian chromium), lint, run pytest"
	@echo "make bench  - run the benchmarks in bench/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -e '.[test]'
	touch $@

venv: $(BIN)/python
install: $(VENV)/.installed
install-test: $(VENV)/.installed-test chromium

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian chromium (end-to-end browser tests)"; \
		SUDO=""; if [ "$$(id -u)" != "0" ]; then SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@/usr/bin/chromium --version

demo: install
	$(BIN)/workbench demo --workspace $(WORKSPACE) --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: install-test lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/dermsynth.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/tcav.py
	$(BIN)/python bench/whatif.py

clean:
	rm -rf $(WORKSPACE) .pytest_cache .mypy_cache .ruff_cache test-artifacts
