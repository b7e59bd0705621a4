# Two commands on a fresh machine: `make serve` and `make test`. Both bootstrap uv and the locked env.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_PYTHON_DOWNLOADS := never
# Compile bytecode at install time: without it every start compiles ~900 modules (seconds).
export UV_COMPILE_BYTECODE := 1
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: bootstrap serve test lint bench demo migrate fmt

bootstrap:
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv
	@$(UV) sync --locked --quiet

serve: bootstrap
	$(UV) run huirongke serve

demo: bootstrap
	$(UV) run huirongke demo

migrate: bootstrap
	$(UV) run huirongke migrate

test: bootstrap
	$(UV) run pytest -q -n auto $(PYTEST_ARGS)

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run python -m huirongke.checks
	$(UV) run python -m huirongke.kit.workdays  # warns of a year without holiday data; fails on a malformed file

fmt: bootstrap
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: bootstrap
	$(UV) run python -m bench.run
	$(UV) run python -m bench.privacy --quick
	$(UV) run python -m bench.uploads
