"""The report's inputs: every run's files read and checked, and the ablation's summary.

Per framework and seed (lenet_compare.core.layout.run_files): reports/runs/{framework}/seed{seed}/
metrics.json, history.csv and run.json, and data/predictions/{framework}/seed{seed}.npz; the
prepared cache (test labels and images). A run must be consistent (its metrics.json describes its
predictions), trained with this params.yaml on this cache, and every run made on one kind of
device; otherwise a PipelineError says which file is stale and what reruns it. Optionally
reports/ablation.json (ablation_report.py): its two summary sentences and its Markdown's path.

Framework-free: reads files only, never imports torch or tensorflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lenet_compare.core import layout
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import name as framework_name
from lenet_compare.core.trained_with import check_trained_with
from lenet_compare.data.dataset import load_prepared
from lenet_compare.evaluate.classification import classification_metrics
from lenet_compare.report.common import read_json, require_files
from lenet_compare.report.stats import plural
from lenet_compare.train.history import HISTORY_COLUMNS

# history.csv must hold at least its first six columns, epoch to epoch_seconds (docs/design.md, "Files",
# lists every column; the train step writes more).
REQUIRED_HISTORY_COLUMNS = HISTORY_COLUMNS[:6]
RERUN_TRAIN = "rerun the train step (dvc repro / snakemake)"


@dataclass
class Run:
    framework: str
    seed: int
    metrics: dict
    run: dict
    history: pd.DataFrame
    y_pred: np.ndarray
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class Inputs:
    params: dict
    frameworks: list[str]
    seeds: list[int]
    runs: dict[tuple[str, int], Run]
    y_test: np.ndarray
    images: np.ndarray  # raw test pixels 0..255, for the disagreement grid
    class_names: list[str]
    cache_meta: dict


def _read_history(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"{path} is not a readable CSV ({e}); rerun the train step") from e
    missing = [c for c in REQUIRED_HISTORY_COLUMNS if c not in df.columns]
    if missing:
        raise PipelineError(f"{path} lacks the column(s) {', '.join(missing)}")
    if df.empty:
        raise PipelineError(f"{path} has no epochs")
    for column in ("train_accuracy", "val_accuracy"):
        if not df[column].between(0, 1).all():
            raise PipelineError(f"{path}: {column} must be a fraction between 0 and 1")
    return df


def _read_predictions(path: Path, n_test: int) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            y_pred = npz["y_pred"]
    except (OSError, ValueError, KeyError) as e:
        raise PipelineError(f"{path} is not a predictions file with y_pred ({e}); rerun the evaluate step") from e
    if y_pred.shape != (n_test,) or not np.issubdtype(y_pred.dtype, np.integer):
        raise PipelineError(
            f"{path}: y_pred has shape {y_pred.shape} and dtype {y_pred.dtype}, expected ({n_test},) "
            "integers, one per test image of the prepared cache; rerun the evaluate step"
        )
    return y_pred.astype(np.int64)


def _check_consistent(r: Run, y_test: np.ndarray, class_names: list[str]) -> None:
    """The metrics file and the predictions must describe the same run of the same test set."""
    where = r.files["metrics"]
    for key in ("test_accuracy", "test_loss"):
        if not isinstance(r.metrics.get(key), int | float):
            raise PipelineError(f"{where} lacks a number under {key!r}")
    rows = r.metrics.get("inference", {}).get("rows") if isinstance(r.metrics.get("inference"), dict) else None
    if not (isinstance(rows, list) and rows):
        raise PipelineError(f"{where} lacks the inference timings (inference.rows); rerun the evaluate step")
    n = len(y_test)
    if "n_test" in r.metrics and r.metrics["n_test"] != n:
        raise PipelineError(
            f"{where} says n_test = {r.metrics['n_test']} but the prepared cache holds {n} test images; "
            "the run is stale, rerun it"
        )
    correct = int(np.sum(r.y_pred == y_test))
    if round(r.metrics["test_accuracy"] * n) != correct:
        raise PipelineError(
            f"{where} says test_accuracy = {r.metrics['test_accuracy']} but {r.files['predictions']} "
            f"has {correct} of {n} right ({correct / n}); the two files come from different runs"
        )
    cm = r.metrics.get("confusion_matrix")
    if cm is not None and cm != classification_metrics(y_test, r.y_pred, class_names)["confusion_matrix"]:
        raise PipelineError(f"{where}: confusion_matrix does not match {r.files['predictions']}")


def _check_trained_here(r: Run, params: dict, n_train: int) -> None:
    """The run must have been trained with this params.yaml's model and train sections on this cache."""
    where = r.files["run"]
    check_trained_with(r.run.get("params"), {"model": params["model"], "train": params["train"]}, where, RERUN_TRAIN)
    if r.run.get("n_train") != n_train:
        raise PipelineError(
            f"{where} says n_train = {r.run.get('n_train')} but the prepared cache holds {n_train} "
            f"training images (differing key: n_train); the run is stale: {RERUN_TRAIN}"
        )


def load_inputs(params: dict, runs_dir: Path, predictions_dir: Path, cache: Path) -> Inputs:
    """Read every input; one PipelineError lists all missing files at once."""
    frameworks, seeds = list(params["frameworks"]), list(params["seeds"])
    files = {(f, s): layout.run_files(f, s, runs_dir, predictions_dir) for f in frameworks for s in seeds}
    require_files(
        [*(p for paths in files.values() for p in paths.values()), Path(cache)],
        "the report",
        "run the train and evaluate steps for every framework and seed in params.yaml first",
    )
    arrays, meta = load_prepared(cache)
    y_test = arrays["y_test"].astype(np.int64)
    class_names = list(meta["class_names"])
    norm = meta.get("normalization", {"mean": 0.0, "std": 1.0})
    images = np.clip((arrays["x_test"] * norm["std"] + norm["mean"]) * 255, 0, 255)
    runs = {}
    for (f, s), paths in files.items():
        r = Run(
            framework=f,
            seed=s,
            metrics=read_json(paths["metrics"]),
            run=read_json(paths["run"]),
            history=_read_history(paths["history"]),
            y_pred=_read_predictions(paths["predictions"], len(y_test)),
            files=paths,
        )
        _check_consistent(r, y_test, class_names)
        _check_trained_here(r, params, int(meta["sizes"]["y_train"]))
        runs[(f, s)] = r
    _check_one_device_kind(runs, frameworks)
    return Inputs(params, frameworks, seeds, runs, y_test, images, class_names, meta)


def _check_one_device_kind(runs: dict[tuple[str, int], Run], frameworks: list[str]) -> None:
    """Every run must have trained on one kind of device (run.json's ``device``: cpu or cuda).

    A GPU and a CPU compute in a different order and with different kernels, so their accuracies
    and timings are not comparable: the article's PyTorch ran on a CPU, its Keras on a GPU.
    """
    seeds_by_kind: dict[str, dict[str, list[int]]] = {f: {} for f in frameworks}
    for (f, s), r in runs.items():
        kind = str(r.run.get("device") or "not recorded")
        seeds_by_kind[f].setdefault(kind, []).append(s)
    if len({kind for kinds in seeds_by_kind.values() for kind in kinds}) <= 1:
        return
    listing = "; ".join(
        f"{framework_name(f)} on "
        + ", ".join(f"{kind} ({plural(len(s), 'seed')}: {', '.join(map(str, s))})" for kind, s in kinds.items())
        for f, kinds in seeds_by_kind.items()
    )
    raise PipelineError(
        f"the runs were made on different kinds of device: {listing}. A comparison needs every run "
        "on one kind: set train.device to cpu or cuda in params.yaml and rerun the train step "
        "(dvc repro / snakemake) on machines that have it"
    )


def load_ablation(path: Path) -> dict:
    """What the main report shows of reports/ablation.json: its two summary sentences and its Markdown's path.

    ``markdown`` (the ablation's Markdown report, relative to the JSON's folder) becomes the link
    target; it must be a relative ``.md`` path, so a link from a file cannot point anywhere else.
    """
    path = Path(path)
    rerun = "rerun the ablation step (dvc repro ablation / snakemake ablation)"
    obj = read_json(path, rerun)
    sentences = obj.get("summary")
    if not (isinstance(sentences, list) and len(sentences) == 2 and all(isinstance(x, str) for x in sentences)):
        raise PipelineError(f"{path} lacks its two summary sentences under 'summary'; {rerun}")
    markdown = obj.get("markdown")
    if not (
        isinstance(markdown, str)
        and markdown.endswith(".md")
        and ":" not in markdown
        and not Path(markdown).is_absolute()
        and not any(c in markdown for c in "\r\n")
    ):
        raise PipelineError(f"{path}: 'markdown' must be the relative path of the ablation's .md report; {rerun}")
    return {"sentences": sentences, "markdown": path.parent / markdown}
