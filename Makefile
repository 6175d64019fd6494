# Set-up and the two entry points. `make main` and `make test` each create the
# virtual environment (.venv) on first use and install the pinned dependencies.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: main test test-all fuzz fault-injection install install-test clean

$(VENV)/.installed: setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e .
	@command -v java >/dev/null 2>&1 || echo "NOTE: java not found on PATH: pycocoevalcap's METEOR and PTB tokenizer (captioning scores) need Java; without it METEOR is skipped (apt-get install default-jre-headless)."
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The main job: UniCL pretraining on the built-in data, held-out evaluation, a preset.
main: $(VENV)/.installed
	$(PY) recipes/pretrain_unicl.py

# The test suite (slow tests excluded; `make test-all` includes them).
test: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 --dist loadfile -q

test-all: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 --dist loadfile -q -m ""

# Nightly-style reliability runs (docs/reliability_inputs.md, docs/reliability_training.md).
fuzz: $(VENV)/.installed-test
	$(PY) tools/fuzz_nightly.py --examples=$${FUZZ_EXAMPLES:-2000}

fault-injection: $(VENV)/.installed-test
	$(PY) tools/fault_injection.py --trials=$${TRIALS:-30}

clean:
	rm -rf $(VENV) build *.egg-info
