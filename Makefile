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

test: $(STAMP) browser
	$(PY) -m pytest

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
