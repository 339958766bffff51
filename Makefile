# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INSTALL_LOG := $(VENV)/install.log

.PHONY: install demo test docs lint clean lock

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	@echo "installing into $(VENV) from requirements.lock (log: $(INSTALL_LOG))..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@{ set -e; \
	  $(BIN)/pip install pip==26.3; \
	  $(BIN)/pip install torch==2.13.0; \
	  $(BIN)/pip install --require-hashes --no-deps -r requirements.lock; \
	  $(BIN)/pip install --no-deps --no-build-isolation -e .; \
	  $(BIN)/pip check; \
	} >$(INSTALL_LOG) 2>&1 || { tail -n 40 $(INSTALL_LOG) >&2; echo "error: install failed; full log: $(INSTALL_LOG)" >&2; exit 1; }
	bash scripts/ensure_java.sh
	bash scripts/ensure_postgres.sh || echo "warning: no PostgreSQL; its MLflow-backend test will skip"
	bash scripts/ensure_chromium.sh || echo "warning: no Chromium; the web-page test will skip"
	touch $(STAMP)

install: $(STAMP)

demo: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ser demo

test: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ruff check .
	$(MAKE) --no-print-directory docs
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

# The documentation site (docs/, mkdocs.yml): broken links, missing pages or a reference that
# cannot be generated fail the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) data site mlruns/mlflow.db mlruns/artifacts

# Re-resolve pyproject.toml and rewrite requirements.lock (exact versions and hashes).
lock:
	bash scripts/refresh_lock.sh
