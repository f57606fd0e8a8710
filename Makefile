# Two commands set everything up on a fresh machine:
#   make demo   installs into .venv, builds the starter model + bundle once, tags the example photos
#   make test   installs into .venv and runs the test suite, then the runtime's tests on the oldest
#               supported Python and dependencies (make test-oldest)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lit-edge-installed
# WordNet 3.0 (Debian's wordnet-base) maps ImageNet's classes onto species and their parents when the
# starter model is built; Chromium renders the HTML report and runs the review page's browser tests
# (through Playwright, pointed at /usr/bin/chromium: 'playwright install' is never needed); Slurm and
# munge (slurm-wlm, munge) run the one-machine cluster of tests/test_slurm.py. All come from the system.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES ?= wordnet-base chromium slurm-wlm munge

# The oldest supported Python (JetPack 6's 3.10): pyenv's, or any python3.10 on PATH, or PY_OLDEST=...
PY_OLDEST ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) $(shell command -v python3.10))
VENV_OLDEST ?= .venv-oldest
STAMP_OLDEST := $(VENV_OLDEST)/.lit-edge-installed
# The device runtime's tests (tag, detect, db, report, exports): the base install, no torch.
RUNTIME_TESTS ?= $(sort $(wildcard tests/test_tag*.py tests/test_detect*.py tests/test_device_*.py \
	tests/test_db*.py tests/test_merge*.py tests/test_fielddata*.py tests/test_report*.py \
	tests/test_shard.py tests/test_output_safety.py tests/test_cli.py))

.PHONY: demo test test-oldest lint bench system-packages clean-venv

demo: $(STAMP)
	$(BIN)/lit-edge demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	@$(MAKE) --no-print-directory test-oldest

# The runtime tests again on Python 3.10 with every runtime dependency at its floor's series
# (.ci/floors.py reads them from pyproject.toml); skipped, saying so, where no Python 3.10 is found.
test-oldest:
	@if [ -z "$(PY_OLDEST)" ]; then \
	  echo "SKIPPED: runtime tests on Python 3.10 with the oldest dependencies: no python3.10 found (pyenv install 3.10, or make PY_OLDEST=/path/to/python3.10)"; \
	else \
	  $(MAKE) --no-print-directory $(STAMP_OLDEST) && \
	  echo "runtime tests on $$($(VENV_OLDEST)/bin/python --version) with $$(tr '\n' ' ' < $(VENV_OLDEST)/floors.txt)" && \
	  $(VENV_OLDEST)/bin/python -m pytest -q -p no:cacheprovider $(RUNTIME_TESTS); \
	fi

# The runtime at its floors; the tests' own tools (pytest, onnx for the test bundles) as they come.
$(STAMP_OLDEST): pyproject.toml .ci/floors.py $(STAMP)
	@test -x $(VENV_OLDEST)/bin/python || $(PY_OLDEST) -m venv $(VENV_OLDEST)
	$(BIN)/python .ci/floors.py > $(VENV_OLDEST)/floors.txt
	$(VENV_OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_OLDEST)/bin/python -m pip install --quiet -c $(VENV_OLDEST)/floors.txt -e . pytest onnx pillow frictionless
	@touch $(STAMP_OLDEST)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench train export device .ci
	$(BIN)/ruff format --check src tests bench train export device .ci

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
	command -v slurmctld >/dev/null || missing="$$missing slurm-wlm"; \
	command -v munged >/dev/null || missing="$$missing munge"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "please install:$$missing (WordNet 3.0 data for the starter model; chromium for the report test; slurm-wlm and munge for the Slurm tests)"; \
	  fi; \
	fi

clean-venv:
	rm -rf $(VENV) $(VENV_OLDEST)
