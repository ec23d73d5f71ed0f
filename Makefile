# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use
# (torch==2.13.0 first: any other torch spec pulls GBs of CUDA wheels) and are idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.amcprune-installed
DEMO_OUT ?= demo-out

.PHONY: setup demo test browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/amcprune demo --out $(DEMO_OUT)

# The report test renders in headless Chromium; install it where we can (root + apt), else that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "chromium not installed: the report screenshot test will be skipped"

# The tests that train run a second time on other floating-point kernels (torch, oneDNN and MKL forced onto
# AVX2, as ../shared/other-cpu does; on a CPU whose own kernels are AVX2, onto the unvectorised ones): a test
# that hinges on one CPU's rounding fails here, not on a user's machine.
TRAINING_TESTS := tests/prune tests/train tests/pipeline tests/sweep tests/cli/test_prune_cli.py \
	tests/cli/test_train_cli.py tests/cli/test_demo_cli.py
OTHER_KERNELS = $$($(PY) -c 'import torch; print("avx2" if torch.backends.cpu.get_cpu_capability() != "AVX2" else "default")')

test: $(STAMP) browser
	$(PY) -m pytest
	@k=$(OTHER_KERNELS); echo "== the training tests again, on the $$k kernels =="; \
	if [ $$k = avx2 ]; then env="ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2"; \
	else env="ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2"; fi; \
	env $$env $(PY) -m pytest -p no:cacheprovider $(TRAINING_TESTS)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
