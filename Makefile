# OPUS: `make run` starts a server with the embedded defaults, `make test` runs the suite.
# Everything is installed into .venv; system packages come from apt-get when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
export OPUS_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: run test install install-test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

# System packages the tests use, as "command:package" pairs, installed with apt-get
# when the command is missing: bash runs batch scripts, curl sends their callbacks;
# a single-node SLURM cluster (munge, slurmctld, slurmd, client commands), a throwaway
# PostgreSQL server and a loopback sshd (the SLURM command prefix) are started by the
# tests themselves.
SYSTEM_TOOLS := bash:bash curl:curl sbatch:slurm-client slurmctld:slurmctld \
	slurmd:slurmd munged:munge ssh:openssh-client sshd:openssh-server \
	pg_ctlcluster:postgresql
export PATH := $(PATH):/usr/sbin:/sbin

install-test: $(VENV)/.installed-test
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The data directory is made absolute, so that the server and any later command agree on
# it; the server runs in the foreground until Ctrl-C.
run: export OPUS_VAR_PATH ?= $(CURDIR)/var
run: install
	$(BIN)/opus init
	$(BIN)/opus serve --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/ruff check opus tests bench wsgi.py
	$(BIN)/ruff format --check opus tests bench wsgi.py
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: install-test
	$(BIN)/ruff check opus tests bench wsgi.py
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff format opus tests bench wsgi.py
	$(BIN)/ruff check --fix opus tests bench wsgi.py

bench: install-test
	@# wrk is the load generator of bench_create (a Python one is used without it).
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
	  || echo "wrk could not be installed: bench_create uses Python clients"
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache
