# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
OUT    ?= out/demo

.PHONY: demo test lint notebooks bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "campwatch needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/campwatch report examples/demo.toml -o $(OUT) --overwrite
	@echo "open $(OUT)/index.html (summary.json, summary.csv, changes.gpkg and manifest.json beside it)"

test: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# Execute every notebooks/*.py (jupytext) offline on the sample tiles; `make test` runs these too.
notebooks: $(VENV)/.installed
	$(PY) -m pytest -q tests/test_notebooks.py

# Accuracy benchmarks on ../shared/data (print figures; see also benchmarks/*.py for speed and memory).
bench: $(VENV)/.installed
	$(VENV)/bin/campwatch bench oscd ../shared/data/oscd
	$(VENV)/bin/campwatch bench vhr --data ../shared/data

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) out .pytest_cache
