# Backline — quick start: `make run` (serve widget + API) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run chat train test soak bench mutation rasa-check clean

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

# Mutation testing of the safety layer (tests/mutation/run.py); not part of `make test`.
# Every mutant by default (1-2 h on 2 cores); MUTATION_SAMPLE=N for a sample.
mutation: setup
	$(BIN)/python tests/mutation/run.py

# Real Rasa 3.6.21 on the project: validate, train, conversation tests, safety over REST.
# Its venv (Python 3.10, via pyenv) is made once in RASA_VENV, default ~/.cache/backline/rasa-3.6.
rasa-check: setup
	nice -n 5 $(BIN)/python tests/rasa/check.py

clean:
	rm -rf $(VENV) models/*.tar.gz .bot results/*
