# Two commands on a fresh machine: `make demo` and `make test`. Everything installs from here.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every pip call is constrained: torch stays the local 2.13.0 CPU wheel.
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
NVCC ?= nvcc
DEMO_TRACE ?= traces/demo_whowhen.json

.PHONY: install demo test lint kernels bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing attrib and its extras into $(VENV) (torch 2.13.0 CPU, from constraints.txt)"
	$(BIN)/pip install -qq --upgrade "pip>=24"
	$(BIN)/pip install -qq -e '.[model,app,scale,dev]'
	$(BIN)/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') and torch.version.cuda is None else 'torch ' + v + ' (CUDA ' + str(torch.version.cuda) + ') is installed, expected the 2.13.0 CPU build')"
	@# The inspector's browser test drives Debian's chromium; install it when missing (non-fatal: the test skips).
	@if [ ! -x $${ATTRIB_CHROMIUM:-/usr/bin/chromium} ] && command -v apt-get >/dev/null 2>&1; then \
	  S=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); echo "installing chromium (apt-get) for the browser test"; \
	  ($$S apt-get update -qq && $$S apt-get install -y -qq chromium) >/dev/null 2>&1 \
	    || echo "chromium could not be installed: the browser test will skip"; \
	fi
	touch $(STAMP)

demo: install
	$(BIN)/attrib analyze $(DEMO_TRACE)

# Compile every CUDA kernel without torch headers, so a kernel that does not compile fails CI.
kernels:
	@mkdir -p build/cuda
	@if command -v $(NVCC) >/dev/null; then \
	  for f in cuda_ext/*.cu; do [ -e "$$f" ] || continue; \
	    echo "nvcc -c -arch=sm_90 $$f"; $(NVCC) -c -arch=sm_90 -O3 $$f -o build/cuda/$$(basename $$f .cu).o || exit 1; \
	  done; \
	  echo "nvcc -c -arch=sm_90 bench/attn_stats/sweep.cu"; \
	  $(NVCC) -c -arch=sm_90 -O3 -Icuda_ext bench/attn_stats/sweep.cu -o build/cuda/sweep.o || exit 1; \
	else echo "nvcc not found: skipping kernel compile check"; fi

lint: install
	$(BIN)/ruff check attrib tests bench apps
	$(BIN)/mypy

test: install kernels lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install
	for b in bench/*/run.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build .pytest_cache attrib.duckdb
