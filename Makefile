# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, so Keras's backend never pulls CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	bash scripts/ensure_java.sh
	bash scripts/ensure_postgres.sh || echo "warning: no PostgreSQL; its MLflow-backend test will skip"
	touch $(STAMP)

install: $(STAMP)

demo: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ser demo

test: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ruff check .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) data mlruns/mlflow.db mlruns/artifacts
