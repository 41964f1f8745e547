"""The ablation report's inputs: every run some step needs, read, checked and reduced to its numbers.

Two kinds of record, both found through lenet_compare.core.layout:

- the ablation's own runs, one JSON per (framework, seed, run) (``layout.ABLATION_RUN``, written by
  workflow/scripts/ablation_train.py, one job per run);
- for the run id ``factors.MAIN`` (the last step), the main pipeline's run: its ``metrics.json``
  (written by workflow/scripts/evaluate.py) and ``run.json`` (workflow/scripts/train.py).

Every writer records ``n_correct``, ``n_test`` and ``test_accuracy`` (= n_correct / n_test, checked
here) and the keys listed in ``ABLATION_KEYS`` / ``MAIN_RUN_KEYS``; a record without one of them
was written by code older than the pipeline's and must be made again. A run trained with other
settings than params.yaml now gives it is stale and named (lenet_compare.core.trained_with).

Framework-free: reads files only, never imports torch or tensorflow.
"""

from __future__ import annotations

from pathlib import Path

from lenet_compare.ablation import factors
from lenet_compare.core import article, layout
from lenet_compare.core.article import PAIR
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.trained_with import check_trained_with
from lenet_compare.report.common import device_text, read_json, require_files

TRAINING_FACTORS = tuple(f for f in article.FACTORS if f != "accuracy")  # what a run's training depends on
RERUN_ABLATION = "rerun the ablation's training (dvc repro / snakemake)"
RERUN_MAIN = "rerun the main pipeline's train and evaluate steps"
TEST_KEYS = ("n_correct", "n_test", "test_accuracy")
# What this module reads of each record (all of them written by every writer today).
ABLATION_KEYS = (
    *("framework", "seed", "run", "settings", "device", "device_name", "n_parameters"),
    *TEST_KEYS,
    *("train_seconds", "seconds_per_epoch", "history"),
)
MAIN_RUN_KEYS = ("params", "device", "device_name", "n_parameters", "epochs", "train_seconds", "seconds_per_epoch")


def main_files(framework: str, seed: int, main_runs_dir: Path) -> dict[str, Path]:
    """The two records of a main run the ablation reads: metrics.json and run.json."""
    return {key: layout.run_file(key, framework, seed, main_runs_dir) for key in ("metrics", "run")}


def needed_runs(params: dict) -> dict[str, list[str]]:
    """Per framework, the run ids some step of the ablation uses ("main" included), in step order."""
    return {f: list(dict.fromkeys(factors.run_id(params, f, s) for s in factors.step_names(params))) for f in PAIR}


def load_results(params: dict, runs_dir: Path, main_runs_dir: Path) -> dict[tuple[str, int, str], dict]:
    """(framework, seed, run id) -> that run's numbers, for every run some step needs.

    One PipelineError lists all missing files at once; a run trained with other settings than
    params.yaml's ablation asks for is stale and named.
    """
    seeds = list(params["ablation"]["seeds"])
    needed = needed_runs(params)
    files: dict[tuple[str, int, str], Path | dict[str, Path]] = {}
    for f in PAIR:
        for s in seeds:
            for rid in needed[f]:
                if rid == factors.MAIN:
                    files[(f, s, rid)] = main_files(f, s, main_runs_dir)
                else:
                    files[(f, s, rid)] = layout.ablation_run_file(f, s, rid, runs_dir)
    require_files(
        [p for entry in files.values() for p in (entry.values() if isinstance(entry, dict) else [entry])],
        "the ablation report",
        "run the ablation's training and the main pipeline's train and evaluate steps for ablation.seeds first",
    )
    results = {
        key: main_result(params, entry) if isinstance(entry, dict) else ablation_result(params, entry, *key)
        for key, entry in files.items()
    }
    n_tests = {r["n_test"] for r in results.values()}
    if len(n_tests) != 1:
        raise PipelineError(
            f"the runs were tested on different numbers of test images ({', '.join(map(str, sorted(n_tests)))}): "
            "they come from different prepared caches; rerun the stale ones"
        )
    return results


def ablation_result(params: dict, path: Path, framework: str, seed: int, run: str) -> dict:
    """The numbers of the ablation's run ``run`` of ``framework``, seed ``seed`` (its own record)."""
    record = read_json(path, RERUN_ABLATION)
    _require_keys(record, ABLATION_KEYS, path, RERUN_ABLATION)
    recorded = (record["framework"], record["seed"], record["run"])
    if recorded != (framework, seed, run):
        raise PipelineError(
            f"{path} records framework {recorded[0]!r}, seed {recorded[1]!r}, run {recorded[2]!r}, "
            f"not {framework!r}, seed {seed}, run {run!r}; {RERUN_ABLATION}"
        )
    settings = record["settings"]
    check_trained_with(
        {k: v for k, v in settings.items() if k in TRAINING_FACTORS} if isinstance(settings, dict) else settings,
        {k: v for k, v in factors.settings(params, framework, run).items() if k in TRAINING_FACTORS},
        f"{path} (run {run!r}: its settings)",
        RERUN_ABLATION,
    )
    history = record["history"]
    if not isinstance(history, list) or not history:
        raise PipelineError(f"{path} holds no history of its epochs; {RERUN_ABLATION}")
    return _numbers(record, len(history), path)


def main_result(params: dict, files: dict[str, Path]) -> dict:
    """The numbers of a main pipeline's run (the last step), from its metrics.json and run.json."""
    metrics, run = read_json(files["metrics"], RERUN_MAIN), read_json(files["run"], RERUN_MAIN)
    _require_keys(metrics, TEST_KEYS, files["metrics"], RERUN_MAIN)
    _require_keys(run, MAIN_RUN_KEYS, files["run"], RERUN_MAIN)
    check_trained_with(run["params"], {"model": params["model"], "train": params["train"]}, files["run"], RERUN_MAIN)
    record = {k: run[k] for k in MAIN_RUN_KEYS} | {k: metrics[k] for k in TEST_KEYS}
    return _numbers(record, run["epochs"], files["metrics"])


def _require_keys(record: dict, keys: tuple[str, ...], where: Path, rerun: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise PipelineError(f"{where} lacks {', '.join(missing)}: written by older code; {rerun}")


def _count(value, what: str, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise PipelineError(f"{where}: {what} must be a non-negative integer, got {value!r}")
    return int(value)


def _numbers(record: dict, epochs, where: Path) -> dict:
    """What this package uses of one run: its test counts (checked) and what describes the run."""
    n_correct, n_test = _count(record["n_correct"], "n_correct", where), _count(record["n_test"], "n_test", where)
    if n_test == 0 or n_correct > n_test:
        raise PipelineError(f"{where}: n_correct = {n_correct} of n_test = {n_test} is not an accuracy")
    accuracy = record["test_accuracy"]
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or abs(accuracy - n_correct / n_test) > 1e-9:
        raise PipelineError(f"{where}: test_accuracy = {accuracy!r} but n_correct / n_test = {n_correct / n_test}")
    return {
        "n_correct": n_correct,
        "n_test": n_test,
        "n_parameters": record["n_parameters"],
        "seconds_per_epoch": record["seconds_per_epoch"],
        "train_seconds": record["train_seconds"],
        "epochs": epochs,
        "device": device_text(record),
    }
