# crypten-fl: two commands on a fresh machine — `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO ?= demo-output
PATIENTS ?= 3000
SEED ?= 7

.PHONY: demo test test-slow lint bench clean install report privacy

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==25.3"

# torch first, from the local CPU wheel (an unpinned torch would pull a multi-GB CUDA build);
# crypten with --no-deps (see pyproject.toml); then the project itself.
$(STAMP): $(BIN)/python pyproject.toml
	@echo "==> installing into $(VENV) (first run only)"
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet --no-deps "crypten==0.4.1"
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m crypten_fl.cli.demo --workdir $(DEMO) --patients $(PATIENTS) --seed $(SEED)

# the demo, then every strategy and baseline on the same federation and `crypten-fl compare`
report: $(STAMP)
	$(BIN)/python -m crypten_fl.cli.demo --workdir $(DEMO) --patients $(PATIENTS) --seed $(SEED) --report

# the demo, then a run trained to overfit (with and without DP-SGD) and `crypten-fl audit`
privacy: $(STAMP)
	$(BIN)/python -m crypten_fl.cli.demo --workdir $(DEMO) --patients $(PATIENTS) --seed $(SEED) --privacy

# two workers (CI has two cores); a test file stays in one worker, so its module fixtures are
# built once
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=20

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# every benchmark that backs a figure in docs/ (takes tens of minutes; prints the machine)
bench: $(STAMP)
	$(BIN)/python bench/secure_aggregation.py --parties 2,4,8,16,32
	$(BIN)/python bench/bench_dp_step.py --threads 1
	$(BIN)/python -m bench.synth_signal
	$(BIN)/python bench/bench_extract.py
	$(BIN)/python bench/provision_ephemeral.py
	$(BIN)/python bench/cli_startup.py --repeats 5
	$(BIN)/python bench/party_startup.py --parties 4 --repeats 5
	$(BIN)/python bench/transport.py --parties 4,16 --fed $(DEMO)/fed --rounds 6 --repeats 7
	$(BIN)/python bench/strategies.py --cohort $(DEMO)/cohort --rounds 20
	$(BIN)/python bench/dropout.py --cohort $(DEMO)/cohort --rounds 10
	$(BIN)/python bench/netns_aggregation.py --parties 4 --rate-gbit 1  # needs root (namespaces)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(DEMO) build *.egg-info
