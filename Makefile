# The two entry points of the README: `make smoke` (main job) and `make test` (test suite).
# Both create the virtual environment .venv from the pinned lock file on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SMOKE_CORES ?= 2

.PHONY: install smoke test lint lock clean-smoke

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

smoke: install
	$(BIN)/snakemake --profile profiles/local --configfile config/smoke.yaml --cores $(SMOKE_CORES)
	@echo "figures written:" && ls figures/smoke

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

# every installed distribution but pip itself (setuptools too: torch needs it), under the file's header
lock:
	grep '^#' requirements.lock | grep -v '^# Editable' > requirements.lock.new
	$(PY) -m pip freeze --all --exclude-editable | grep -v '^pip==\|^#' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' >> requirements.lock.new
	mv requirements.lock.new requirements.lock
