# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Test processes: two on the 2-core machine (the suite waits on servers and subprocesses about half
# the time); `make test TEST_PROCESSES=0` runs it in one.
TEST_PROCESSES ?= 2
DEPS_STAMP := $(VENV)/.deps-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test setup system-deps test-system-deps lint bench clean lock

run: setup ## Start the API (:8000) and the console (:8501) on SQLite + the in-process queue
	$(VENV)/bin/heron up

test: setup test-system-deps lint ## Install everything, then run the whole test suite
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadgroup

setup: $(DEPS_STAMP) system-deps
	$(VENV)/bin/heron migrate

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.deps-* && touch $@

lock: ## Refresh constraints.txt: the newest versions pyproject.toml allows, installed in a throw-away venv
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet --upgrade pip
	$(VENV)-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; $(VENV)-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf $(VENV)-lock

system-deps:
	@bash scripts/system-deps.sh

test-system-deps: ## Chromium for the console's browser test (make run does not need it)
	@bash scripts/system-deps.sh --test

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) bench/bench_speed.py
	$(PY) bench/bench_accuracy.py
	$(PY) bench/bench_extract.py
	$(PY) bench/bench_load.py
	$(PY) bench/bench_adaptation.py
	$(PY) bench/bench_learning_curve.py
	$(PY) bench/bench_loop.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
