# The commands a newcomer needs. Everything installs into ./.venv from pinned versions.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DEMO_ACCOUNTS ?= 2000
PYTEST_ARGS ?=
# Debian packages the tests use: docker-compose validates docker-compose.yml without an engine; the browser
# tests drive Debian's Chromium at this path (playwright's own browser download needs the internet); WeasyPrint
# renders the letters and agreements with Debian's Pango and DejaVu fonts.
DOCKER_COMPOSE ?= docker-compose
CHROMIUM ?= /usr/bin/chromium
# WeasyPrint's Pango (the library file, whatever the architecture's directory), the fonts it draws with, and GNU
# msgfmt, which checks the German catalogue.
PANGO_LIB ?= $(firstword $(wildcard /usr/lib/*/libpangoft2-1.0.so.0 /usr/lib/libpangoft2-1.0.so.0))
FONTS_DIR ?= /usr/share/fonts/truetype/dejavu
MSGFMT ?= msgfmt
APT_GET ?= apt-get

.PHONY: install system-deps demo test lint bench bench-full migrate clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## make system-deps: the Debian packages the tests need, installed with apt-get when missing (as root, or
## through sudo; otherwise it stops and says what to install)
system-deps:
	@missing=""; \
	command -v $(DOCKER_COMPOSE) >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	test -x $(CHROMIUM) || missing="$$missing chromium"; \
	test -e "$(PANGO_LIB)" || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	test -e "$(FONTS_DIR)" || missing="$$missing fonts-dejavu-core"; \
	command -v $(MSGFMT) >/dev/null 2>&1 || missing="$$missing gettext"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else \
		echo "make test needs the Debian packages$$missing, and installs them only as root or through sudo:" >&2; \
		echo "    as root: $(APT_GET) update && $(APT_GET) install -y$$missing" >&2; \
		exit 1; \
	fi; \
	echo "make test: installing the Debian packages$$missing ($${sudo:-as root} $(APT_GET))"; \
	$$sudo $(APT_GET) update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $$missing >/dev/null

migrate: install
	$(PY) manage.py migrate --noinput

## make demo: set up everything, load a demo book, sweep it, serve http://127.0.0.1:8000
demo: install
	DEBUG=true $(PY) manage.py migrate --noinput
	DEBUG=true $(PY) manage.py demo_workflow_clear
	DEBUG=true $(PY) manage.py rules_load --publish --if-none-published
	DEBUG=true $(PY) manage.py demo_setup --accounts $(DEMO_ACCOUNTS)
	DEBUG=true $(PY) manage.py demo_users
	DEBUG=true $(PY) manage.py demo_conversation --actor alice
	DEBUG=true $(PY) manage.py demo_conversation --actor bob
	DEBUG=true $(PY) manage.py demo_conversation
	DEBUG=true $(PY) manage.py runserver 127.0.0.1:8000

## make lint: ruff (lint and format), mypy, import contracts, migrations up to date
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

## make test: the whole suite (lint included), on this machine's PostgreSQL (127.0.0.1:5432, database workout,
## created if missing) and Redis (127.0.0.1:6379) unless DATABASE_URL / CELERY_BROKER_URL say otherwise
test: system-deps lint
	@services=$$($(PY) tools/test_environment.py) || exit 1; eval "$$services"; \
	echo "$(BIN)/pytest -n 2 $(PYTEST_ARGS)"; $(BIN)/pytest -n 2 $(PYTEST_ARGS)

## make bench: the benchmarks; each prints one JSON object on its last line (figures: bench/README.md)
bench: install
	$(PY) bench/sweep.py
	$(PY) bench/cases.py
	$(PY) bench/feasibility.py
	$(PY) bench/ruleset.py
	$(PY) bench/api_load.py
	$(PY) bench/desk.py
	$(PY) bench/assignment.py
	$(PY) bench/agreement.py
	$(PY) bench/messages.py

## make bench-full: also the 1,000,000-account book (time and peak memory); takes several minutes
bench-full: bench
	BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/workout_bench_1m $(PY) bench/sweep.py \
		--accounts 1000000 --orm-accounts 0 --repeat 3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache db.sqlite3
