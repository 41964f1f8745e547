# Two commands do everything on a fresh machine: `make run` (the whole pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Every recipe sees the venv's python, snakemake and dvc first on PATH: the pipeline's command
# lines say `python ...`, and both engines must find the same interpreter.
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed

.PHONY: setup data-source run dvc-repro ablation benchmark test lint format screenshot clean

setup: $(STAMP)

# Rebuilt when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "error: Python 3.11 is required (torch/tensorflow pins); set PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Offline fallback for the download step: Debian's package ships the real Fashion-MNIST files.
data-source:
	@tools/ensure-offline-data.sh

# A fresh clone has the committed baseline reports/ but no data/ and no Snakemake records of
# how they were made; Snakemake would call those reports up to date. Rebuild everything then.
run: setup data-source
	@if [ -e data/prepared/fashion_mnist.npz ]; then \
		snakemake --cores 4 --resources gpu=1; \
	else \
		echo "No data/ yet: running every step (the committed reports/ are rebuilt too)."; \
		snakemake --cores 4 --resources gpu=1 --forceall; \
	fi

dvc-repro: setup data-source
	dvc repro

# The article's setup and the steps from it to the controlled protocol (part of `run` too: the
# report summarizes it); this target builds just that part and what it needs.
ablation: setup data-source
	snakemake ablation --cores 4 --resources gpu=1

# Training speed, memory, evaluation speed, the engines' overhead and scaling with seeds
# (about 20 minutes on 2 CPU cores). Not part of `run`. Keep the machine otherwise idle.
benchmark: setup data-source
	snakemake benchmark --cores 4 --resources gpu=1

test: setup
	python -m pytest

lint: setup
	ruff check .
	ruff format --check .
	snakefmt --check Snakefile workflow/rules
	snakemake --lint

format: setup
	ruff format .
	ruff check --fix .
	snakefmt Snakefile workflow/rules

# A picture of reports/report.html as headless Chromium shows it, for the README.
screenshot: setup
	python -m lenet_compare.report.browser reports/report.html --screenshot reports/figures/report_screenshot.png

clean:
	rm -rf .snakemake logs
