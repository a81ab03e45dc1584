# regbench — `make setup` builds .venv with pinned versions; `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup test lint format demo ui lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

demo: setup
	$(BIN)/regbench benchmark --study studies/smoke.yaml
	@echo "Open the runs: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db  (then http://127.0.0.1:5000, experiment 'smoke')"

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

lock: setup
	@echo "# Pinned versions for regbench (pip install -c constraints.txt -e .). Regenerate: make lock" > constraints.txt
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' >> constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
