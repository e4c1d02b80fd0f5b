# Quick start on a fresh clone (with ../shared beside it):  make repro  then  make test
SHELL := /bin/bash
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1

.PHONY: setup data repro test test-fast bench-cpu clean-venv

setup: $(VENV)/.installed  ## create .venv and install the pinned full stack (torch from requirements.lock, the s3 remote)

$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[train,s3,dev]"
	touch $@

data: setup  ## fetch data/raw from the DVC remote
	dvc pull data.dvc

repro: data  ## run the whole pipeline on the default data
	dvc repro

# pytest-xdist workers; each builds the session fixtures it needs (about 2 GB of memory each)
TEST_WORKERS ?= 2

test: setup  ## the whole test suite, in $(TEST_WORKERS) workers (each file's tests in one)
	python -m pytest -n $(TEST_WORKERS)

test-fast: setup  ## the fast tier: no end-to-end DVC runs, training runs or browsers
	python -m pytest -n $(TEST_WORKERS) -m "not slow"

clean-venv:
	rm -rf $(VENV)

.PHONY: plots-template plots dashboard-assets dashboard

plots-template: setup  ## regenerate src/geofoundry/report/vega_template.html from npm (pinned, integrity-checked)
	python -m geofoundry.report.build_template

dashboard-assets: setup  ## regenerate src/geofoundry/dashboard/static/vendor/ from npm (pinned, integrity-checked)
	python -m geofoundry.dashboard.build_assets

dashboard: setup  ## the data dashboard on http://127.0.0.1:8765/ (docs/DASHBOARD.md)
	geofoundry dashboard

plots: setup  ## offline HTML of the training and evaluation plots: build/plots/index.html (REVS="main exp-x" to compare)
	geofoundry report --out build/plots $(REVS)
