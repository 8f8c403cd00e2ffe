# Two commands matter: `make demo` (try it) and `make test` (the whole suite, as CI runs it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test lint setup setup-test vendor clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

setup-test: $(STAMP) node_modules/.installed

# MSAL.js for nested app auth in production, served from this service's own origin.
vendor: setup node_modules/.installed
	$(BIN)/python -m addin_service.web.vendor

demo: setup
	$(BIN)/addin-service demo

test: setup-test
	$(BIN)/ruff check addin_service tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) node_modules .addin-demo var
