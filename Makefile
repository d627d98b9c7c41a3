# make demo   set up .venv, train the demo model, serve TensorBoard on 127.0.0.1:$(PORT)
# make test   set up .venv, run the Python and JavaScript test suites (installs Debian's
#             chromium with apt-get when missing, which needs root)
# make bench  set up .venv, run benchmarks/run_all.sh (BENCH_ARGS=--quick for smoke runs)
#
# Setup runs once: .venv/.stamp records it, and pip runs again only when setup.py or
# requirements-dev.txt change. torch and torchvision come from this machine's local wheels
# (pip's config points at them; /etc/xdg/pip caps their versions).

PYTHON ?= python3
VENV ?= .venv
PORT ?= 6006
LOGDIR ?= runs/demo
STEPS ?= 2000

PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
CHROMIUM := /usr/bin/chromium

.PHONY: setup demo test bench chromium clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py requirements-dev.txt | $(PY)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -m pip install --no-build-isolation -e .
	touch $@

demo: $(STAMP)
	$(PY) demo/train.py --logdir $(LOGDIR) --steps $(STEPS) --port $(PORT)

# Debian's chromium for the browser tests (Playwright never downloads a browser here): used
# when installed, else installed with apt-get, which needs root.
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make test: the browser tests need Debian's chromium at $(CHROMIUM); install it as root: sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium" >&2; \
	    exit 1; \
	  fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends chromium || \
	  { apt-get update && apt-get install -y --no-install-recommends chromium; }; }

# Both suites run even when the first fails; the target fails if either did.
test: $(STAMP) chromium
	@status=0; \
	$(PY) -m pytest tests -q -m "not benchmark" || status=$$?; \
	if ls frontend/tests/*.test.mjs >/dev/null 2>&1; then \
	  node --test frontend/tests/ || status=$$?; \
	else \
	  echo "no frontend/tests/*.test.mjs: JavaScript tests skipped"; \
	fi; \
	exit $$status

bench: $(STAMP)
	@test -f benchmarks/run_all.sh || { echo "benchmarks/run_all.sh not found" >&2; exit 1; }
	PYTHON="$(CURDIR)/$(PY)" bash benchmarks/run_all.sh $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info runs demo_runs
