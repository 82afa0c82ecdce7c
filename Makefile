# Two commands: `make demo` (the whole pipeline on synthetic data) and `make test`.
# Each creates .venv in the repo when missing and installs the package with test extras.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/slidemap demo --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# ruff, and the import contracts of pyproject.toml (layers of docs/ARCHITECTURE.md)
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py --all --update-docs

clean:
	rm -rf runs .pytest_cache
