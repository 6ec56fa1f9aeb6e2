# meshscope — every entry point a user or CI needs.
# `make demo` and `make test` work on a fresh machine with only Python 3.11:
# both create the project virtualenv (.venv) first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.meshscope-installed
PROTO_SRC := $(wildcard protos/meshscope/v1/*.proto)
CONSUL := .tools/bin/consul

.PHONY: setup consul protos protos-check lint test demo bench clean help

help:
	@echo "make setup        create .venv and install meshscope with its dev tools"
	@echo "make consul       put a consul binary in .tools/bin (PATH's, or Debian 11's package)"
	@echo "make demo         start an agent service and stream a reply from it"
	@echo "make test         run the test suite (unit + integration)"
	@echo "make lint         ruff + mypy + stale-stub check"
	@echo "make protos       regenerate the Python stubs from protos/"
	@echo "make bench        run the benchmarks in bench/ (prints figures)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv first"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Consul is not in Debian 12: use one on PATH, or unpack Debian 11's package
# (fetched with a private apt state, so the machine's apt setup is untouched).
consul: $(CONSUL)

$(CONSUL):
	$(PYTHON) scripts/fetch_consul.py --dest .tools

# Stubs are generated beside the .proto files and committed, so that
# `pip install -e .` alone makes `import meshscope.v1` work.
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos \
	  --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTO_SRC)

# Fails when the committed stubs differ from what the pinned generator makes.
protos-check: $(STAMP)
	@rm -rf .build/protos-check && mkdir -p .build/protos-check
	@$(PY) -m grpc_tools.protoc -Iprotos --python_out=.build/protos-check \
	  --pyi_out=.build/protos-check --grpc_python_out=.build/protos-check $(PROTO_SRC)
	@for f in .build/protos-check/meshscope/v1/*; do \
	  committed=protos/meshscope/v1/$$(basename $$f); \
	  cmp -s $$f $$committed || { echo "stale stub: $$committed (run 'make protos')"; exit 1; }; \
	done
	@echo "protos: stubs are up to date"

lint: $(STAMP) protos-check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: $(STAMP) $(CONSUL)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(PY) -m meshscope_cli.demo

bench: $(STAMP) $(CONSUL)
	$(PY) bench/agent_path.py
	$(PY) bench/discovery_times.py
	$(PY) bench/orchestrated_path.py

clean:
	rm -rf .build .pytest_cache .mypy_cache .ruff_cache .tools
