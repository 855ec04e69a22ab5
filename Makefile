# Two entry points for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,gateway]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m rpc.demo

lint: $(STAMP)
	$(BIN)/ruff check commitdb rpc tests bench
	$(BIN)/ruff format --check commitdb rpc tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -n 2

bench: $(STAMP)
	$(BIN)/pytest bench -q --benchmark-only -o python_files='bench_*.py' \
		--benchmark-columns=min,median,mean,ops,rounds

clean:
	rm -rf $(VENV) build dist *.egg-info
