# Two commands do everything on a fresh machine: `make run` (the whole pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Every recipe sees the venv's python, snakemake and dvc first on PATH: the pipeline's command
# lines say `python ...`, and both engines must find the same interpreter.
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed
# Free disk a new .venv/ needs, in GiB: more than the venv itself, as pip unpacks wheels beside
# what it has installed (docs/development.md), plus a margin.
SETUP_GIB ?= 18

.PHONY: setup data-source run demo dvc-repro ablation benchmark test test-fast lint format snakemake-report screenshot clean

setup: $(STAMP)

# Rebuilt when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "error: Python 3.11 is required (torch/tensorflow pins); set PYTHON=python3.11"; exit 1; }
	@# A new venv needs SETUP_GIB free (docs/development.md); stop before pip does.
	@[ -d $(VENV) ] || $(PYTHON) tools/check_free_disk.py $(VENV) $(SETUP_GIB)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# torch's CUDA 13 wheels and the CUDA 12 ones of TensorFlow and JAX both install
	@# nvidia/cudnn/lib, nvidia/nccl/lib and nvidia/nvshmem/lib under the same file names, and the
	@# last one pip installs wins. Make it CUDA 12's on every machine
	@# (docs/slurm-and-gpus.md#one-cudnn-for-every-framework).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
		$$(grep -E '^nvidia-(cudnn|nccl|nvshmem)-cu12==' requirements.txt)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Offline fallback for the download step: Debian's package ships the real Fashion-MNIST files.
data-source:
	@tools/ensure-offline-data.sh

# In a fresh clone (the committed reports/, no data/) Snakemake schedules every job: the jobs
# that make data/ must run, and every job after them follows (docs/engines.md#a-fresh-clone).
run: setup data-source
	snakemake --cores 4 --resources gpu=1

# A first look in a few minutes: the whole pipeline (every framework, 2 seeds, the ablation,
# the report) on a small subset, in a throwaway copy of the checkout (tools/demo.py). Nothing in
# the checkout is written. Ends with the run's one-line answer and the path of its report.html.
demo: setup
	python tools/demo.py

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

# Everything: the fast tier below plus the tests that train or run whole engines (tiny subsets).
# The tests read Fashion-MNIST from Debian's dataset-fashion-mnist only (their tiny params), and
# skip the end-to-end tests without it: data-source installs it, as for `run`.
test: setup data-source
	python -m pytest

# The everyday command while you work: every test that trains nothing and runs no engine
# (the tests marked slow are left out; docs/development.md).
test-fast: setup data-source
	python -m pytest -m "not slow"

# `snakemake --lint` exits 1 for its conda/container notes alone, which this project declines on
# purpose (docs/snakemake.md); the wrapper fails on any other finding.
lint: setup
	ruff check .
	ruff format --check .
	@# The type checker holds every backend to train/protocol.py's Backend (pyproject.toml [tool.mypy]).
	mypy
	snakefmt --check Snakefile workflow/rules
	python tools/snakemake_lint.py

format: setup
	ruff format .
	ruff check --fix .
	snakefmt Snakefile workflow/rules

# Snakemake's own report of the last run: the report's files with their captions
# (workflow/report/), the rules with their code and params, every job's runtime (docs/snakemake.md).
snakemake-report: setup
	snakemake --report reports/snakemake-report.zip

# A picture of reports/report.html as headless Chromium shows it, for the README.
screenshot: setup
	python -m lenet_compare.report.browser reports/report.html --screenshot reports/figures/report_screenshot.png

clean:
	rm -rf .snakemake logs
