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
	@mkdir -p $(OUT)
	@for s in data/sample_tiles/*/imgs_[12]; do \
	  name=$$(echo $$s | cut -d/ -f3)_$$(basename $$s); \
	  $(VENV)/bin/campwatch info --json $$s > $(OUT)/$$name.json || exit 1; \
	done
	@for c in data/sample_tiles/*/; do \
	  city=$$(basename $$c); \
	  $(VENV)/bin/campwatch compare $$c/imgs_1 $$c/imgs_2 -o $(OUT)/$$city --overwrite || exit 1; \
	done
	@echo "demo results: $(OUT)/ (change maps, polygons, summary.json and quicklook.png per city in $(OUT)/<city>/)"

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) out .pytest_cache
