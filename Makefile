# Two entry points: `make run` (the pipeline on its embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export AGENT_PIPELINE_HOME ?= $(HOME)/.agent_pipeline
PORT ?= 3000

.PHONY: install run test bench stack stack-stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The metrics stack (Prometheus with the alert rules on 127.0.0.1:$PROMETHEUS_PORT, the Pushgateway on
# 127.0.0.1:$PUSHGATEWAY_PORT) runs beside dagster dev and stops with it; missing packages or a taken port leave
# it out, never the UI.
run: install
	@bash ops/install-system-deps.sh || echo "make run: Prometheus / Pushgateway packages unavailable; running without them" >&2
	bash ops/run-dev.sh $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

test: install
	bash ops/install-system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/pytest

stack: install
	bash ops/install-system-deps.sh
	bash ops/start-local-stack.sh start

stack-stop:
	bash ops/start-local-stack.sh stop

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
