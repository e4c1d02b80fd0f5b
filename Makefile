# Quick start on a fresh clone (with ../shared beside it):  make repro  then  make test
SHELL := /bin/bash
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1

.PHONY: setup data repro test bench-cpu clean-venv

setup: $(VENV)/.installed  ## create .venv and install the pinned stack (torch from requirements.lock)

$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $@

data: setup  ## fetch data/raw from the DVC remote
	dvc pull data.dvc

repro: data  ## run the whole pipeline on the default data
	dvc repro

test: setup  ## run the test suite
	python -m pytest

clean-venv:
	rm -rf $(VENV)
