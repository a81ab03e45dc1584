# regbench — `make setup` builds .venv with pinned versions.
# `make test`: the full suite, what CI runs: the tests not marked `serial` on 2 pytest-xdist workers (a test file per
#   worker at a time, so a module's fixtures start once), then the `serial` ones alone (they assert wall-clock
#   limits); prints the slowest tests of each part. 27 min on the 2-core machine, idle otherwise (22.5 + 4.5 min,
#   2026-12-07 02:17).
# `make test-fast`: the same minus the tests marked `slow` (Ray, or training beyond a few steps), on 2 workers; for
#   the edit-test loop — run `make test` before committing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export RAY_USAGE_STATS_ENABLED := 0
# 2 pytest-xdist workers, a test file per worker at a time
XDIST := -n 2 --dist loadfile

.PHONY: setup test test-fast lint format demo lm-tiny ui lock clean docs
LM_CHECKPOINTS ?= $(or $(REGBENCH_LM_CHECKPOINTS),../shared/lm_checkpoints)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q $(XDIST) -m "not serial" --durations=25
	$(BIN)/python -m pytest -q -m serial --durations=5

test-fast: setup
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Random-weight copies of the tiny language-model folders (same code and tokenizers as the real models) for the smoke.
lm-tiny: setup
	for m in dnabert2-tiny nt-v2-tiny; do test -e .regbench/lm/$$m/model.safetensors || \
	  $(BIN)/regbench lm check $(LM_CHECKPOINTS)/$$m --random-init --save .regbench/lm/$$m --n 4 || exit 1; done

demo: setup lm-tiny
	$(BIN)/regbench benchmark --study studies/smoke.yaml

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

lock: setup
	@echo "# Pinned versions for regbench (pip install -c constraints.txt -e .). Regenerate: make lock" > constraints.txt
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' >> constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

docs: setup
	$(BIN)/python -m mkdocs build --strict
