# One-command set-up: every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test test-kafka unit demo lint bench reliability simulate clean

# The modules setup.py compiles with mypyc (the COMPILED list of src/parafka/build.py).
COMPILED := $(addprefix src/parafka/,$(shell grep -o '"[a-z_]*/[a-z_]*\.py"' src/parafka/build.py | tr -d '"'))

# An extension module imports before its .py: after an edit of a compiled module the
# install runs again (it builds them; tests/conftest.py refuses to run on a stale one).
$(STAMP): pyproject.toml setup.py src/parafka/build.py $(COMPILED)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[broker,cli,dev,examples,otel]'
	touch $(STAMP)

venv: $(STAMP)

# Four workers (each with its own local broker, and its own Apache Kafka broker once a
# test needs one): the integration tests mostly wait for group joins and idle timeouts, so
# they overlap well even on 2 cores. `make test` includes the Kafka tier (tests marked
# `kafka`, run against Apache Kafka resolved by Maven into ~/.cache/parafka); it skips
# without java or mvn, and PARAFKA_REQUIRE_KAFKA=1 (set by .ci/run) makes that a failure.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 5 --durations=10

# The Kafka tier alone, required to run (docs/development.md says what is in it).
test-kafka: $(STAMP)
	PARAFKA_REQUIRE_KAFKA=1 $(BIN)/python -m pytest -q -n 5 -m kafka --durations=10

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# The deterministic simulator beyond the 2,120 seeds of `make test`: make simulate SEEDS=20000
# (FLAGS="--exactly-once", "--starve" or both for the other shapes)
SEEDS ?= 10000
simulate: $(STAMP)
	PYTHONHASHSEED=0 $(BIN)/python -m parafka.sim --seeds $(SEEDS) $(FLAGS)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks reliability examples
	$(BIN)/ruff format --check src tests benchmarks reliability examples
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/io_bound.py
	$(BIN)/python benchmarks/overhead.py
	cd benchmarks && ../$(BIN)/python executors.py

# The long reliability scenarios (about 30 minutes); short versions run in `make test`.
reliability: $(STAMP)
	$(BIN)/python reliability/crash_loop.py
	$(BIN)/python reliability/rebalance_churn.py
	$(BIN)/python reliability/connection_loss.py
	$(BIN)/python reliability/memory.py
	$(BIN)/python reliability/soak.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find src -name '*.so' -delete
