"""Every path of a run's records, written once: the main runs, their predictions, the ablation's runs.

The package, the Snakemake rules (through workflow/rules/common.smk) and the tests take their
paths from here; dvc.yaml cannot import Python, so tests/test_layout_paths.py checks its paths
against these patterns. Each pattern is a format string with the wildcards ``{framework}``,
``{seed}`` and, for the ablation, ``{run}``, so Snakemake can use it as it is.

Kept free of heavy imports: Snakemake reads it while parsing the workflow.
"""

from __future__ import annotations

from pathlib import Path

# Inputs every run shares.
PREPARED = "data/prepared/fashion_mnist.npz"
INIT = "data/init/seed{seed}.npz"

# One main run: reports/runs/{framework}/seed{seed}/..., its model and predictions under data/.
RUNS_DIR = "reports/runs"
RUN_DIR = RUNS_DIR + "/{framework}/seed{seed}"
RUN = {
    "metrics": RUN_DIR + "/metrics.json",
    "history": RUN_DIR + "/history.csv",
    "run": RUN_DIR + "/run.json",
    "live": RUN_DIR + "/live",
}
PREDICTIONS_DIR = "data/predictions"
PREDICTIONS = PREDICTIONS_DIR + "/{framework}/seed{seed}.npz"
MODEL_DIR = "data/models/{framework}/seed{seed}"
CHECKPOINT_DIR = "data/checkpoints/{framework}/seed{seed}"

# One ablation run (one training configuration of one framework and seed; run ids:
# lenet_compare.ablation.factors.runs_to_train).
ABLATION_RUNS_DIR = "reports/ablation/runs"
ABLATION_RUN = ABLATION_RUNS_DIR + "/{framework}/seed{seed}/{run}.json"
ABLATION_LIVE = "reports/ablation/live/{framework}/seed{seed}/{run}"
ABLATION_MODEL_DIR = "data/ablation/models/{framework}/seed{seed}/{run}"
ABLATION_CHECKPOINT_DIR = "data/checkpoints/ablation/{framework}/seed{seed}/{run}"


def _under(root: Path | str | None, pattern: str, default_root: str) -> str:
    """``pattern`` with its ``default_root`` prefix moved under ``root`` (the same when None)."""
    if root is None:
        return pattern
    assert pattern.startswith(default_root + "/"), (pattern, default_root)
    return Path(root).as_posix() + pattern[len(default_root) :]


def run_files(framework: str, seed: int, runs_dir=None, predictions_dir=None) -> dict[str, Path]:
    """The record files of one main run, and its predictions; the folders may be moved (tests)."""
    files = {
        key: Path(_under(runs_dir, pattern, RUNS_DIR).format(framework=framework, seed=seed))
        for key, pattern in RUN.items()
        if key != "live"
    }
    files["predictions"] = Path(
        _under(predictions_dir, PREDICTIONS, PREDICTIONS_DIR).format(framework=framework, seed=seed)
    )
    return files


def run_file(key: str, framework: str, seed: int, runs_dir=None) -> Path:
    """One record of a main run: ``key`` is metrics, history, run or live."""
    return Path(_under(runs_dir, RUN[key], RUNS_DIR).format(framework=framework, seed=seed))


def ablation_run_file(framework: str, seed: int, run: str, runs_dir=None) -> Path:
    """The record of one ablation run (the JSON that workflow/scripts/ablation_train.py writes)."""
    return Path(_under(runs_dir, ABLATION_RUN, ABLATION_RUNS_DIR).format(framework=framework, seed=seed, run=run))
