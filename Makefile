# Two commands set everything up on a fresh machine:
#   make demo   installs into .venv, builds the starter model + bundle once, tags the example photos
#   make test   installs into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lit-edge-installed

.PHONY: demo test lint bench clean-venv

demo: $(STAMP)
	$(BIN)/lit-edge demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench train export
	$(BIN)/ruff format --check src tests bench train export

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
