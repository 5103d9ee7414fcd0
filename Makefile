# ServeML developer entry points. The two that matter: `make serve` and `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install, so the venv is rebuilt only when what it is made from changes.
STAMP := $(VENV)/.serveml-installed
EXAMPLE_DIR := examples/iris/model
EXAMPLE_MODEL := $(EXAMPLE_DIR)/model.joblib
PORT ?= 9000
LINT_PATHS := runtime frameworks serveml builder controlplane bench examples tests
# Strict typing for the shipped code; tests are checked by ruff and by running.
TYPED_PATHS := runtime frameworks serveml builder controlplane

.DEFAULT_GOAL := help
.PHONY: help venv example serve bench controlplane lint docker test clean distclean

help:
	@echo "make serve      train the iris example (once) and serve it on http://127.0.0.1:$(PORT)"
	@echo "make test       lint, type-check and run every test"
	@echo "make venv       create $(VENV) from requirements/dev.lock"
	@echo "make example    train the iris example into $(EXAMPLE_DIR)"
	@echo "make bench      measure ServeML against a minimal handler, FastAPI+Mangum and bare predict (and image sizes where Docker runs)"
	@echo "make controlplane  run the control-plane API locally against a moto server on :8000"
	@echo "make lint       ruff check, ruff format --check, mypy"
	@echo "make docker     start a Docker engine (where root may) and make the Lambda base image"
	@echo "make clean      remove caches, build output and the trained example"
	@echo "make distclean  clean, and remove $(VENV) too"

venv: $(STAMP)

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar off -r requirements/dev.lock
	$(BIN)/python -m pip install --progress-bar off --no-deps -e .
	touch $@

example: $(EXAMPLE_MODEL)

# Order-only on the venv: reinstalling packages is no reason to retrain.
$(EXAMPLE_MODEL): examples/iris/train.py | $(STAMP)
	$(BIN)/python examples/iris/train.py --out $(EXAMPLE_DIR)

serve: venv example
	$(BIN)/serveml serve $(EXAMPLE_DIR) --port $(PORT)

bench: venv docker
	$(BIN)/python -m bench

controlplane: venv
	$(BIN)/serveml controlplane --port 8000

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy $(TYPED_PATHS)

# The container tests need a Docker engine and a Lambda base image. Where this machine allows it
# (root, apt-get) the engine is installed and started; elsewhere those tests skip with the
# reason, except in CI (CI=true), where they must run.
docker: venv
	@bash scripts/docker-engine.sh start || { [ "$$CI" != true ] && echo "make: no Docker engine here; the container tests will skip"; }
	@if docker info >/dev/null 2>&1; then PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/lambda-base-image.sh; fi

test: venv lint docker
	$(BIN)/pytest

clean:
	rm -rf $(EXAMPLE_DIR) build dist .pytest_cache .mypy_cache .ruff_cache .aws-sam .serveml
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
