# vsdr: `make run` (set up, then the default job), `make test`, `make figures`, `make figures-ffhq`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP_FLAGS := --quiet --disable-pip-version-check --no-warn-script-location

.PHONY: setup run test test-slow figures figures-ffhq lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing vsdr and its dependencies into $(VENV) (first time: a few minutes)"
	@$(PY) -m pip install $(PIP_FLAGS) --upgrade pip > $(VENV)/pip.log 2>&1 || true
	@$(PY) -m pip install $(PIP_FLAGS) -e '.[dev]' >> $(VENV)/pip.log 2>&1 || \
		{ grep -v "is ignored: it is neither" $(VENV)/pip.log | tail -40; exit 1; }
	@$(PY) -c "import vsdr, torch, torchvision, lpips, cleanfid, ot, hydra, lightning, diffusers, deepinv"
	@touch $(STAMP)

run: $(STAMP)
	$(PY) run.py $(ARGS)

# one OpenMP thread per process: the tests start several processes (jobs, DDP, submitit)
# on 2 cores, where oversubscribed spinning threads were measured 10x slower
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# `make figures` makes every figure; `make figures images_small fig5` only those
figures: $(STAMP)
	$(PY) scripts/make_figures.py $(FIGURE_NAMES)

# `make figures-ffhq RESULTS=DIR`: Table IV and the FFHQ DP planes from a finished FFHQ sweep
# (shards merged first), into outputs/figures/ffhq/ (docs/FFHQ.md)
figures-ffhq: $(STAMP)
	@test -n "$(RESULTS)" || { echo "give RESULTS=DIR: the folder of the FFHQ jobs (docs/FFHQ.md)"; exit 2; }
	$(PY) scripts/figures_ffhq.py $(RESULTS)

ifeq (figures,$(firstword $(MAKECMDGOALS)))
FIGURE_NAMES := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
$(eval $(FIGURE_NAMES):;@:)
endif

lint: $(STAMP)
	$(PY) -m ruff check vsdr tests scripts run.py

clean:
	rm -rf $(VENV) .pytest_cache
