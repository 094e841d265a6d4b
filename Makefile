# make demo  - set up (if needed) and run the end-to-end demo
# make test  - set up (if needed) and run lint, types and the whole test suite
# make hub   - rebuild the hub's web assets from web/ (needs Node.js; the built files are committed)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint pytest bench install clean hub

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet -e '.[dev]' torch==2.13.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest

test: lint pytest

hub:
	cd web && npm ci --no-audit --no-fund && npm run build
	python3 web/sources.py --write

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-peers .demo .bench .pytest_cache .mypy_cache .ruff_cache
