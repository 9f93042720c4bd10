# Backline — quick start: `make run` (serve widget + API) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run chat train test soak bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,eval]"
	@touch $(STAMP)

setup: $(STAMP)

train: setup
	$(BIN)/bot train

run: setup
	$(BIN)/bot run

chat: setup
	$(BIN)/bot shell

test: setup
	$(BIN)/python -m pytest -q -m "not soak"

soak: setup
	BACKLINE_SOAK=1 $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) models/*.tar.gz .bot results/*
