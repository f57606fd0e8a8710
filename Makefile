# Two commands set everything up on a fresh machine:
#   make demo   installs into .venv, builds the starter model + bundle once, tags the example photos
#   make test   installs into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lit-edge-installed
# WordNet 3.0 (Debian's wordnet-base) maps ImageNet's classes onto species and their parents when the
# starter model is built; Chromium renders the HTML report and runs the review page's browser tests
# (through Playwright, pointed at /usr/bin/chromium: 'playwright install' is never needed). Both
# come from the system.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES ?= wordnet-base chromium

.PHONY: demo test lint bench system-packages clean-venv

demo: $(STAMP)
	$(BIN)/lit-edge demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench train export
	$(BIN)/ruff format --check src tests bench train export

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-packages
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Installs the system packages where apt-get exists and they are missing; elsewhere says what to install.
system-packages:
	@missing=""; \
	[ -f /usr/share/wordnet/data.noun ] || missing="$$missing wordnet-base"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "please install:$$missing (WordNet 3.0 data for the starter model; chromium for the report test)"; \
	  fi; \
	fi

clean-venv:
	rm -rf $(VENV)
