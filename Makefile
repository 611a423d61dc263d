# junto's everyday commands. Everything installs into ./.venv.
#   make chat Q="your question"   install (first time: ~13 min, llama.cpp compiles twice) and ask the embedded default
#   make test                     install and run the test suite
#   make bench                    run every benchmark, results in bench/results/

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
Q      ?= What is the capital of France?

.PHONY: install chat test bench clean

install: $(VENV)/.installed $(BIN)/llama-server

# torch is pinned to the CPU build first: an unpinned torch pulls a multi-GB CUDA build.
# llama-cpp-python compiles from source (no binary wheel on PyPI); GGML_NATIVE=OFF gives a portable build.
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q -e '.[all,test]'
	touch $@

# llama.cpp's own server (parallel slots, continuous batching: the default llama.cpp server), compiled from
# vendor/llama.cpp of the pinned llama-cpp-python sdist (~5 min on 2 cores); a no-op when the one there is current.
$(BIN)/llama-server: $(VENV)/.installed
	$(BIN)/python -m junto.pool.llamaserver_build
	touch $@

chat: install
	$(BIN)/junto chat "$(Q)"

test: install
	$(BIN)/junto models pull smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .junto-test build *.egg-info
