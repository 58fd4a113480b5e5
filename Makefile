# Two commands set everything up: `make test` and `make demo`. Both create .venv when absent
# (CPU torch pinned in the same pip command), install dgae, fetch the offline weights, and are
# fast no-ops for the set-up part when the environment already exists.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dgae-installed
export HF_HUB_OFFLINE := 1

.PHONY: env weights test lint demo clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

weights: $(STAMP)
	$(PY) -m dgae weights

# lint first: a format or lint error fails CI like a failing test
test: weights lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

demo: weights
	$(PY) -m dgae demo --out runs/demo

clean:
	rm -rf $(VENV) runs
