# The two entry points of the README: `make smoke` (main job) and `make test` (test suite).
# Both create the virtual environment .venv from the pinned lock file on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SMOKE_CORES ?= 2
# pytest-xdist workers of `make test` (tests/conftest.py: the smoke tests on one, the SLURM runs on another)
TEST_WORKERS ?= 2
# gpu-check with the authors' JAX update: AUTHORS_CODE=checkout of rainx0r/mtrl, JAX_BENCH=the anchor
# script jax_update_bench.py, JAX_PYTHON=a Python with their dependencies
AUTHORS_CODE ?=
JAX_BENCH ?=
JAX_PYTHON ?= python
JAX_ARGS := $(if $(AUTHORS_CODE),--authors-code $(AUTHORS_CODE) --jax-bench $(JAX_BENCH) --jax-python $(JAX_PYTHON))

.PHONY: install smoke test lint lock clean-smoke report smoke-report gpu-check jax-ratio

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

# A browsable report of every figure: of the study (config/config.yaml) after its runs, of the smoke
# pipeline after `make smoke`; before its figures exist, one line saying what to run first.
report: install
	@$(PY) -m mtrl.study.report_check report.zip "snakemake --profile slurm (the study)" \
		$(BIN)/snakemake --report report.zip

smoke-report: install
	@$(PY) -m mtrl.study.report_check report-smoke.zip "make smoke" \
		$(BIN)/snakemake --configfile config/smoke.yaml --report report-smoke.zip

# One GPU node end to end in at most 8 minutes (benchmarks/gpu_check.py); on a cluster:
# srun --gres=gpu:1 make gpu-check
gpu-check: install
	$(PY) benchmarks/gpu_check.py $(JAX_ARGS)

# Our update over the authors' jitted JAX update on this GPU, like for like (a fixed batch) and end to
# end, at widths 400, 1024 and 4096 (graph and compiled, tf32; ~5 minutes): needs AUTHORS_CODE etc.
jax-ratio: install
	@test -n "$(AUTHORS_CODE)" -a -n "$(JAX_BENCH)" || { echo "mtrl: error: make jax-ratio needs \
	AUTHORS_CODE=<checkout of rainx0r/mtrl> JAX_BENCH=<its jax_update_bench.py> (and JAX_PYTHON=<a Python \
	with their dependencies>, default python)" >&2; exit 2; }
	$(PY) benchmarks/gpu.py --jax-only $(JAX_ARGS) --jax-rounds 1

test: install lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# what `make smoke` and `make smoke-report` wrote (results/smoke, figures/smoke, report-smoke.zip)
clean-smoke:
	rm -rf results/smoke figures/smoke report-smoke.zip

# every installed distribution but pip itself (setuptools too: torch needs it), under the file's header
lock:
	grep '^#' requirements.lock | grep -v '^# Editable' > requirements.lock.new
	$(PY) -m pip freeze --all --exclude-editable | grep -v '^pip==\|^#' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' >> requirements.lock.new
	mv requirements.lock.new requirements.lock
