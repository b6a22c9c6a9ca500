# handoffkit task runner: the README quotes these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DB     ?= sqlite:///handoffkit.db

# The fast tier (make check): no PostgreSQL, no browser, no notebook execution, no long tests.
FAST   := not postgres and not browser and not slow

.PHONY: demo test check lint lab bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The notebooks declare the "handoffkit" kernel: registered inside the venv (--sys-prefix), so JupyterLab
# and papermill run from it find the kernel without touching the user's own kernels. The report template
# becomes the venv's nbconvert template "handoffkit_report" (a wheel install ships it as data files; an
# editable one gets this link to the working tree).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name handoffkit --display-name "Python (handoffkit)" > /dev/null
	mkdir -p $(VENV)/share/jupyter/nbconvert/templates
	ln -sfn $(CURDIR)/handoffkit/report/templates/handoffkit_report $(VENV)/share/jupyter/nbconvert/templates/handoffkit_report
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## make demo: set everything up and build the demo engagement (SQLite), then its rendered reports
demo: $(VENV)/.installed
	rm -f handoffkit.db handoffkit.db-wal handoffkit.db-shm
	$(BIN)/handoffkit --db $(DB) demo --workdir outputs/demo/programme
	$(BIN)/handoffkit --db $(DB) log verify --actor "make demo"
	$(BIN)/handoffkit --db $(DB) report --params params/quarterly.yaml --out outputs/demo --actor "make demo"

## make test: lint, then the whole suite (SQLite and PostgreSQL, notebooks, browser); prints the 20 slowest tests
test: $(VENV)/.installed-dev lint
	$(BIN)/pytest -n 2 --durations=20 $(PYTEST_FLAGS)

## make check: lint, then the fast tier of the suite (SQLite only; under a minute on 2 cores)
check: $(VENV)/.installed-dev lint
	$(BIN)/pytest -n 2 -m "$(FAST)" $(PYTEST_FLAGS)

## make lint: ruff (lint and format) and the import-linter layer contract
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check handoffkit tests bench
	$(BIN)/ruff format --check handoffkit tests bench
	$(BIN)/lint-imports

## make lab: JupyterLab on notebooks/; the notebooks open on the project's kernel, Python (handoffkit)
lab: $(VENV)/.installed
	$(BIN)/jupyter lab notebooks/

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) handoffkit.db handoffkit.db-wal handoffkit.db-shm outputs/demo .pytest_cache
