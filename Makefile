# nablatau — the two commands of the README:
#   make reproduce   run the experiments (PROFILE=smoke|quick|paper, default quick)
#   make test        run the test suite (unit tests, doctests, notebooks through nbval)
# Both create .venv and install the package with its dev extras first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick
EXECUTED := notebooks/executed
PAPERMILL = $(BIN)/papermill --kernel python3 --cwd notebooks

# Trained models are cached here (keyed by everything that determines the weights) and reused.
export NABLATAU_CACHE_DIR ?= $(CURDIR)/checkpoints
# Data sets are read from (and downloaded to) here; CI points it at ../shared/data.
export NABLATAU_DATA_DIR ?= $(CURDIR)/data

.PHONY: install test reproduce benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest --nbval-lax tests nablatau $(wildcard notebooks/*.ipynb)

reproduce: $(STAMP)
	mkdir -p $(EXECUTED)
	$(PAPERMILL) notebooks/quickstart.ipynb $(EXECUTED)/quickstart-$(PROFILE).ipynb -p PROFILE $(PROFILE)
	for fraction in 0.15 0.30; do \
	  $(PAPERMILL) notebooks/text_removal.ipynb $(EXECUTED)/text_removal-$(PROFILE)-$$fraction.ipynb \
	    -p PROFILE $(PROFILE) -p FORGET_FRACTION $$fraction || exit 1; \
	done

benchmark: $(STAMP)
	$(BIN)/python benchmarks/unlearn_vs_retrain.py

clean:
	rm -rf $(VENV) *.egg-info
