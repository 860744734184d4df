# RonRender: `make demo` renders a sample animation end to end; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup services sandbox packages demo up stack test lint format clean addon chaos contracts fuzz bench

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[blender,dev]'
	touch $(STAMP)

# The pinned Solidity compiler and the local dev chain (anvil), from the npm registry.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Recompile the escrow contract with the pinned solc (the artifacts are committed).
contracts: $(NODE_STAMP)
	node scripts/compile_contract.mjs

services:
	bash scripts/ensure_services.sh

demo: setup services sandbox
	$(BIN)/python scripts/demo.py

up: setup services sandbox
	$(BIN)/python scripts/local_farm.py

# The production-like stack (Procfile under honcho) from an env file: make stack STACK_ENV=stack.env
STACK_ENV ?= stack.env
stack: setup services
	$(BIN)/python scripts/stack.py --env $(STACK_ENV)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Debian packages, installed when missing: bubblewrap, the sandbox nodes render untrusted
# scenes in, and chromium for the dashboard's browser tests (Playwright drives it).
define apt_install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
endef

sandbox:
	$(call apt_install_missing,bubblewrap)

packages:
	$(call apt_install_missing,bubblewrap chromium)

test: setup services packages lint
	$(BIN)/python -m pytest

# Schemathesis against /openapi.json with many generated requests per operation and role.
fuzz: setup services
	$(BIN)/python scripts/fuzz_api.py --examples 200 --output fuzz-output/report.json

# Benchmarks side by side: prints a table, writes bench-output/bench.json.
# Sizes are options, e.g. make bench BENCH_ARGS="--nodes 100,1000 --frames-per-node 20".
bench: setup services
	$(BIN)/python -m scripts.bench.run $(BENCH_ARGS)

chaos: setup services sandbox
	$(BIN)/python scripts/chaos.py --frames 24 --nodes 4

# One zip per platform in dist/ (eth-account bundled as wheels, cached in .ronrender/addon-wheels);
# e.g. make addon ADDON_ARGS="--platform linux-x64", or ADDON_ARGS=--no-wheels.
addon: setup
	$(BIN)/python scripts/build_addon.py $(ADDON_ARGS)

clean:
	rm -rf .ronrender demo-output bench-output chaos-output fuzz-output .pytest_cache
