# The commands a newcomer needs. Everything installs into ./.venv from pinned versions.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DEMO_ACCOUNTS ?= 2000
PYTEST_ARGS ?=

.PHONY: install demo test lint bench bench-full migrate clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

migrate: install
	$(PY) manage.py migrate --noinput

## make demo: set up everything, load a demo book, sweep it, serve http://127.0.0.1:8000
demo: install
	DEBUG=true $(PY) manage.py migrate --noinput
	DEBUG=true $(PY) manage.py demo_workflow_clear
	DEBUG=true $(PY) manage.py rules_load --publish --if-none-published
	DEBUG=true $(PY) manage.py demo_setup --accounts $(DEMO_ACCOUNTS)
	DEBUG=true $(PY) manage.py demo_users
	DEBUG=true $(PY) manage.py runserver 127.0.0.1:8000

## make lint: ruff (lint and format), mypy, import contracts, migrations up to date
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

## make test: the whole suite (lint included). CI runs it with DATABASE_URL and CELERY_BROKER_URL set.
test: lint
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

## make bench: the benchmarks; each prints one JSON object on its last line (figures: bench/README.md)
bench: install
	$(PY) bench/sweep.py
	$(PY) bench/cases.py
	$(PY) bench/feasibility.py
	$(PY) bench/ruleset.py
	$(PY) bench/api_load.py

## make bench-full: also the 1,000,000-account book (time and peak memory); takes several minutes
bench-full: bench
	BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/workout_bench_1m $(PY) bench/sweep.py \
		--accounts 1000000 --orm-accounts 0 --repeat 3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache db.sqlite3
