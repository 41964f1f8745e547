"""The comparison report: read every run's files, compute the statistics, draw, render, write.

Inputs (DESIGN.md): reports/runs/{framework}/seed{seed}/{metrics.json,history.csv,run.json},
data/predictions/{framework}/seed{seed}.npz and the prepared cache (test labels and images).
Outputs: report.md and report.html from one jinja2 template (templates/report.md.j2; the HTML
is that Markdown rendered by markdown-it with raw HTML disabled, images as data: URIs, inside
templates/page.html.j2), the figures, reports/metrics.json (DVC's metrics, `dvc exp show`), and one
(actual, predicted) CSV per framework for DVC's confusion template. Optionally reports/ablation.json
(ablation_report.py): its two summary sentences and a link to its Markdown, in a section of their own.

Framework-free: reads files only, never imports torch or tensorflow.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lenet_compare.core import article
from lenet_compare.core.atomic import write_json, write_text
from lenet_compare.core.errors import PipelineError
from lenet_compare.data.dataset import load_prepared
from lenet_compare.evaluate.classification import classification_metrics
from lenet_compare.evaluate.inference_timing import BATCH_SIZES, FASTEST, NAIVE
from lenet_compare.report import figures, stats
from lenet_compare.report.common import (
    FIGURES,
    FRAMEWORK_NAMES,
    PAIR,
    confusion_csv,
    device_text,
    read_json,
    require_files,
)
from lenet_compare.report.render import data_uri, environment, image_link, markdown_to_html, md_link
from lenet_compare.train.history import HISTORY_COLUMNS

log = logging.getLogger(__name__)

# history.csv must hold at least the columns DESIGN.md promises (the train step writes more).
REQUIRED_HISTORY_COLUMNS = HISTORY_COLUMNS[:6]
REPORT_LIBRARIES = ("numpy", "scipy", "statsmodels", "pandas", "matplotlib", "seaborn", "jinja2", "markdown-it-py")


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


# ----------------------------------------------------------------------------------------------
# Reading and checking the inputs


def run_files(runs_dir: Path, predictions_dir: Path, framework: str, seed: int) -> dict[str, Path]:
    folder = Path(runs_dir) / framework / f"seed{seed}"
    return {
        "metrics": folder / "metrics.json",
        "history": folder / "history.csv",
        "run": folder / "run.json",
        "predictions": Path(predictions_dir) / framework / f"seed{seed}.npz",
    }


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


def _differing_keys(recorded, expected, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (a missing key differs too)."""
    if isinstance(recorded, dict) and isinstance(expected, dict):
        keys = list(dict.fromkeys([*expected, *recorded]))
        return [k for key in keys for k in _differing_keys(recorded.get(key), expected.get(key), f"{prefix}{key}.")]
    return [] if recorded == expected else [prefix.rstrip(".") or "params"]


def _check_trained_with(r: Run, params: dict, n_train: int) -> None:
    """The run must have been trained with this params.yaml's model and train sections on this cache."""
    where = r.files["run"]
    rerun = "the run is stale: rerun the train step (dvc repro / snakemake)"
    # Through JSON, as run.json holds it: tuples become lists, keys strings.
    expected = json.loads(json.dumps({"model": params["model"], "train": params["train"]}))
    recorded = r.run.get("params")
    if not isinstance(recorded, dict):
        raise PipelineError(f"{where} does not record the params it was trained with; {rerun}")
    differing = _differing_keys(recorded, expected)
    if differing:
        raise PipelineError(
            f"{where} was trained with params that differ from params.yaml in {', '.join(differing)}; {rerun}"
        )
    if r.run.get("n_train") != n_train:
        raise PipelineError(
            f"{where} says n_train = {r.run.get('n_train')} but the prepared cache holds {n_train} "
            f"training images (differing key: n_train); {rerun}"
        )


def load_inputs(params: dict, runs_dir: Path, predictions_dir: Path, cache: Path) -> Inputs:
    """Read every input; one PipelineError lists all missing files at once."""
    frameworks, seeds = list(params["frameworks"]), list(params["seeds"])
    files = {(f, s): run_files(runs_dir, predictions_dir, f, s) for f in frameworks for s in seeds}
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
        _check_trained_with(r, params, int(meta["sizes"]["y_train"]))
        for key in ("init", "order"):
            recorded, expected = r.run.get(key), params["train"][key]
            if recorded in ("shared", "native") and recorded != expected:
                raise PipelineError(
                    f"{paths['run']} was trained with train.{key} = {recorded} but params.yaml says "
                    f"{expected}; the run is stale, rerun it"
                )
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
        f"{FRAMEWORK_NAMES.get(f, f)} on "
        + ", ".join(f"{kind} ({stats.plural(len(s), 'seed')}: {', '.join(map(str, s))})" for kind, s in kinds.items())
        for f, kinds in seeds_by_kind.items()
    )
    raise PipelineError(
        f"the runs were made on different kinds of device: {listing}. A comparison needs every run "
        "on one kind: set train.device to cpu or cuda in params.yaml and rerun the train step "
        "(dvc repro / snakemake) on machines that have it"
    )


# ----------------------------------------------------------------------------------------------
# The numbers


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _mean_std(values: list) -> tuple[float | None, float | None]:
    x = [v for v in (_number(v) for v in values) if v is not None]
    if not x:
        return None, None
    return float(np.mean(x)), (float(np.std(x, ddof=1)) if len(x) > 1 else None)


def _distinct(values):
    """The one value all runs share (kept as it is), or the distinct values joined by commas."""
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    if len(distinct) == 1:
        return distinct[0]
    return ", ".join(map(str, distinct)) or None


TIMING_FIELDS = {
    # column: (where, key)
    "train_seconds": ("run", "train_seconds"),
    "seconds_per_epoch": ("run", "seconds_per_epoch"),
    "images_per_second": ("run", "images_per_second"),
    "inference_images_per_second": ("metrics", "inference_images_per_second"),
    "latency_ms_single_image": ("metrics", "latency_ms_single_image"),
    "peak_rss_mb": ("run", "peak_rss_mb"),
    "peak_gpu_memory_mb": ("run", "peak_gpu_memory_mb"),
}


def runs_table(inp: Inputs) -> pd.DataFrame:
    """One row per (framework, seed) with every per-run number the report uses."""
    rows = []
    for (f, s), r in inp.runs.items():
        row = {
            "framework": f,
            "seed": s,
            "test_accuracy": float(r.metrics["test_accuracy"]),
            "test_loss": float(r.metrics["test_loss"]),
            "device_text": device_text(r.run),
        }
        for column, (where, key) in TIMING_FIELDS.items():
            row[column] = _number((r.run if where == "run" else r.metrics).get(key))
        if row["train_seconds"] is None:  # metrics.json carries it too (DESIGN.md)
            row["train_seconds"] = _number(r.metrics.get("train_seconds"))
        if row["seconds_per_epoch"] is None:  # the median, as the train step records it
            row["seconds_per_epoch"] = float(r.history["epoch_seconds"].median())
        rows.append(row)
    return pd.DataFrame(rows)


ENVIRONMENT_KEYS = (
    "framework_version",
    "python_version",
    "numpy_version",
    "device",
    "device_name",
    "n_parameters",
    "deterministic",
    "tf32",
    "epochs",
    "batch_size",
    "n_train",
)


def analyze(inp: Inputs) -> dict:
    """Every number of the report, as plain data (also what the template sees)."""
    table = runs_table(inp)
    acc = {f: {s: inp.runs[(f, s)].metrics["test_accuracy"] for s in inp.seeds} for f in inp.frameworks}
    per_run = {key: classification_metrics(inp.y_test, r.y_pred, inp.class_names) for key, r in inp.runs.items()}
    return {
        "frameworks": {f: framework_summary(inp, table, acc[f], per_run, f) for f in inp.frameworks},
        "seeds": inp.seeds,
        "n_test": len(inp.y_test),
        "class_names": inp.class_names,
        "per_run": per_run,
        "table": table,
        "pair": pair_analysis(inp, acc) if all(f in inp.frameworks for f in PAIR) else None,
        "inference": inference_summary(inp),
    }


def inference_summary(inp: Inputs) -> dict:
    """The naive and the fastest idiomatic inference call per framework and batch size, over the
    seeds (each run's metrics.json ``inference.rows``), and the sentence comparing fastest with fastest.

    ``rows`` is empty when no run recorded the paths (a metrics.json from before they were timed).
    """
    rows = []
    for f in inp.frameworks:
        for size in BATCH_SIZES:
            for path in (NAIVE, FASTEST):
                found = [
                    r
                    for s in inp.seeds
                    for r in inp.runs[(f, s)].metrics.get("inference", {}).get("rows", [])
                    if r["batch_size"] == size and r["path"] == path
                ]
                if not found:
                    continue
                # Which call was fastest is measured per run, so seeds may disagree: name each.
                calls = Counter(r["call"] for r in found)
                ms, per_second = (_mean_std([r[key] for r in found]) for key in ("median_ms", "images_per_second"))
                rows.append(
                    {
                        "framework": f,
                        "name": FRAMEWORK_NAMES.get(f, f),
                        "batch_size": size,
                        "path": path,
                        "calls": [{"call": call, "runs": n} for call, n in calls.items()],
                        "n_runs": len(found),
                        "timed_calls": _distinct(r.get("timed_calls") for r in found),
                        "median_ms": {"mean": ms[0], "std": ms[1]},
                        "images_per_second": {"mean": per_second[0], "std": per_second[1]},
                    }
                )
    timed_calls = {size: _distinct(r["timed_calls"] for r in rows if r["batch_size"] == size) for size in BATCH_SIZES}
    return {"rows": rows, "timed_calls": timed_calls, "sentence": fastest_with_fastest(rows)}


def fastest_with_fastest(rows: list[dict]) -> str | None:
    """PyTorch against TensorFlow, each on its fastest idiomatic call; None without both."""
    a, b = PAIR
    fastest = {(r["framework"], r["batch_size"]): r for r in rows if r["path"] == FASTEST}
    parts = []
    for size in BATCH_SIZES:
        if (a, size) not in fastest or (b, size) not in fastest:
            return None
        ra, rb = fastest[(a, size)], fastest[(b, size)]
        ms_a, ms_b = ra["median_ms"]["mean"], rb["median_ms"]["mean"]
        quicker, ratio = (ra["name"], ms_b / ms_a) if ms_a <= ms_b else (rb["name"], ms_a / ms_b)
        what = "one image" if size == 1 else f"a batch of {size:,}"
        parts.append(
            f"{what} takes {ms_a:,.3f} ms in {ra['name']} and {ms_b:,.3f} ms in {rb['name']} "
            f"({quicker} {ratio:.1f}x as fast)"
        )
    return "Fastest idiomatic call against fastest idiomatic call: " + "; ".join(parts) + "."


def framework_summary(inp: Inputs, table: pd.DataFrame, acc: dict, per_run: dict, f: str) -> dict:
    """One framework over the seeds: accuracy, loss, macro F1, timings, device and environment."""
    rows = table[table["framework"] == f]
    timing = {}
    for column in TIMING_FIELDS:
        mean, std = _mean_std(rows[column].tolist())
        timing[column] = {"mean": mean, "std": std}
    runs_f = [inp.runs[(f, s)].run for s in inp.seeds]
    return {
        "name": FRAMEWORK_NAMES.get(f, f),
        "accuracy": stats.summarize([acc[s] for s in inp.seeds]),
        "per_seed": {s: acc[s] for s in inp.seeds},
        "test_loss_mean": float(rows["test_loss"].mean()),
        "test_loss_per_seed": {s: inp.runs[(f, s)].metrics["test_loss"] for s in inp.seeds},
        "macro_f1_mean": float(np.mean([per_run[(f, s)]["macro_f1"] for s in inp.seeds])),
        "timing": timing,
        "device": _distinct(device_text(r) for r in runs_f),
        "environment": {key: _distinct(r.get(key) for r in runs_f) for key in ENVIRONMENT_KEYS},
        "n_parameters": _distinct(r.get("n_parameters") for r in runs_f),
    }


def pair_analysis(inp: Inputs, acc: dict) -> dict:
    """TensorFlow against PyTorch, paired by seed: the tests, McNemar per seed, the verdict and the article."""
    a, b = PAIR
    paired = stats.paired_tests(acc[a], acc[b])
    # The margin is in points (params.yaml), the accuracies are fractions.
    margin_points = inp.params["report"]["equivalence_margin"]
    equivalence = stats.equivalence_test(acc[a], acc[b], margin_points / 100)
    mcn = {s: stats.mcnemar_test(inp.y_test, inp.runs[(a, s)].y_pred, inp.runs[(b, s)].y_pred) for s in inp.seeds}
    pvals = [m["pvalue"] for m in mcn.values() if m["pvalue"] is not None]
    gap = article.gap()
    return {
        "a": a,
        "b": b,
        "paired": paired,
        "equivalence": equivalence,
        "equivalence_margin_points": margin_points,  # as params.yaml gives it, for metrics.json
        # By seed, so the report can follow params.yaml's seed order (paired["differences"]
        # follows sorted seeds).
        "difference_by_seed": dict(zip(paired["seeds"], paired["differences"], strict=True)),
        "mcnemar": mcn,
        "mcnemar_significant": sum(p < stats.ALPHA for p in pvals),
        "mcnemar_pvalue_min": min(pvals) if pvals else None,
        "mcnemar_pvalue_max": max(pvals) if pvals else None,
        "agreement_mean": float(np.mean([m["agreement"] for m in mcn.values()])),
        "verdict": [
            *stats.verdict(paired, mcn, FRAMEWORK_NAMES[a], FRAMEWORK_NAMES[b], equivalence=equivalence),
            article_comparison(gap, paired),
        ],
        "article_gap": gap,
    }


def article_comparison(gap: dict, paired: dict) -> str:
    """Where the article's gap (one run each) falls relative to where a single run's gap would.

    The article's gap is one run per framework, so it is compared with the 95 % prediction
    interval for a single paired run's difference, not with the CI of the mean difference (which
    narrows towards a point as seeds are added, and would call ordinary run-to-run scatter a
    failure to reproduce).
    """
    published = f"The article's gap ({gap['low']:.2f} to {gap['high']:.2f} points, TensorFlow ahead, one run each)"
    if paired["pi_low"] is None:
        return f"{published} cannot be set against the spread of single runs here: {paired['pi_note']}."
    low, high = stats.pp(paired["pi_low"]), stats.pp(paired["pi_high"])
    interval = (
        f"the 95 % prediction interval for a single run's TensorFlow-minus-PyTorch gap under this protocol "
        f"({low:+.2f} to {high:+.2f} points: where one run's gap would fall 95 % of the time)"
    )
    if gap["low"] >= high:
        return f"{published} lies above {interval}: this protocol does not reproduce it."
    if gap["high"] < low:
        return f"{published} lies below {interval}."
    where = "lies within" if low <= gap["low"] and gap["high"] <= high else "overlaps"
    return f"{published} {where} {interval}: a single run under this protocol could show such a gap."


def keras_eps_steps(beta2: float, tolerance: float = 0.01) -> int:
    """Steps after which Keras's eps / sqrt(1 - beta2^t) is within ``tolerance`` of eps."""
    if beta2 <= 0:
        return 1
    return max(1, math.ceil(math.log(1 - 1 / (1 + tolerance) ** 2) / math.log(beta2)))


def _percent(fraction: float | None) -> float | None:
    """A fraction (or a difference of fractions) in percent (points); None stays None (JSON null)."""
    return None if fraction is None else 100 * fraction


# reports/metrics.json's timing keys: one training and one inference figure per framework, the
# two a reader compares first; the rest stays in report.md's Timings table.
SUMMARY_TIMINGS = ("seconds_per_epoch", "inference_images_per_second")


def summary_metrics(analysis: dict) -> dict:
    """reports/metrics.json, the only file DVC knows as metrics: few, short, grouped keys.

    Sized for one `dvc exp show` table (about 20 columns): accuracies in percent, differences in
    percentage points (TensorFlow minus PyTorch), each group a prefix of the flattened column
    names (accuracy.torch.mean, gap.p, equivalence.equivalent, timing.tensorflow.seconds_per_epoch).
    Everything else is in report.md; ``headline`` (common.py) reads this file back.
    """
    out: dict = {"n_seeds": len(analysis["seeds"]), "accuracy": {}}
    for f, fw in analysis["frameworks"].items():
        acc = fw["accuracy"]
        out["accuracy"][f] = {
            "mean": _percent(acc["mean"]),
            "std": _percent(acc["std"]),
            "ci95_low": _percent(acc["ci_low"]),
            "ci95_high": _percent(acc["ci_high"]),
        }
    pair = analysis["pair"]
    if pair:
        p, eq = pair["paired"], pair["equivalence"]
        out["gap"] = {
            "mean": _percent(p["mean_difference"]),
            "ci95_low": _percent(p["ci_low"]),
            "ci95_high": _percent(p["ci_high"]),
            "p": p["t_pvalue"],  # paired t-test
        }
        out["equivalence"] = {
            "margin": pair["equivalence_margin_points"],
            "ci90_low": _percent(eq["ci_low"]),
            "ci90_high": _percent(eq["ci_high"]),
            "p": eq["pvalue"],  # TOST: the larger of the two one-sided p-values
            "equivalent": eq["equivalent"],
        }
    out["timing"] = {
        f: {key: fw["timing"][key]["mean"] for key in SUMMARY_TIMINGS} for f, fw in analysis["frameworks"].items()
    }
    return out


# ----------------------------------------------------------------------------------------------
# Figures


def protocol_text(train: dict) -> str:
    return f"train.init = {train['init']}, train.order = {train['order']}"


def make_figures(inp: Inputs, analysis: dict, figures_dir: Path) -> dict[str, Path]:
    figures_dir = Path(figures_dir)
    paths = {name: figures_dir / f"{name}.png" for name in FIGURES}
    history = pd.concat([r.history.assign(framework=f, seed=s) for (f, s), r in inp.runs.items()], ignore_index=True)
    table = analysis["table"]
    figures.learning_curves(history, paths["learning_curves"])
    published = {
        f: (article.PUBLISHED[f]["low"], article.PUBLISHED[f]["high"]) for f in inp.frameworks if f in article.PUBLISHED
    }
    figures.accuracy_per_seed(
        table, {f: fw["accuracy"] for f, fw in analysis["frameworks"].items()}, paths["accuracy_per_seed"], published
    )
    per_run = analysis["per_run"]
    cms = {f: np.sum([per_run[(f, s)]["confusion_matrix"] for s in inp.seeds], axis=0) for f in inp.frameworks}
    figures.confusion_matrices(cms, inp.class_names, paths["confusion_matrices"])
    per_class = pd.DataFrame(
        [
            {"framework": f, "seed": s, "class_name": name, "recall": m["per_class"]["recall"][k]}
            for (f, s), m in per_run.items()
            for k, name in enumerate(inp.class_names)
        ]
    )
    pair = analysis["pair"]
    figures.per_class_accuracy(
        per_class, inp.class_names, paths["per_class_accuracy"], pair=(pair["a"], pair["b"]) if pair else None
    )
    figures.timing(table, paths["timing"])
    if pair:
        a, b, seed = pair["a"], pair["b"], inp.seeds[0]
        preds = {a: inp.runs[(a, seed)].y_pred, b: inp.runs[(b, seed)].y_pred}
        figures.disagreements(
            inp.images, inp.y_test, preds, inp.class_names, paths["disagreements"], title=f"Seed {seed}"
        )
        figures.drift(history, a, b, paths["drift"], protocol_text(inp.params["train"]))
    else:
        why = "Needs both frameworks (params.yaml frameworks lists only " + ", ".join(inp.frameworks) + ")."
        figures.placeholder(paths["disagreements"], why)
        figures.placeholder(paths["drift"], why)
    return paths


def write_confusion_csvs(inp: Inputs, plots_dir: Path) -> list[Path]:
    """(actual, predicted) class names per test image of the first seed, for DVC's confusion plot."""
    written = []
    seed = inp.seeds[0]
    for f in inp.frameworks:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["actual", "predicted"])
        names = inp.class_names
        w.writerows((names[t], names[p]) for t, p in zip(inp.y_test, inp.runs[(f, seed)].y_pred, strict=True))
        path = Path(confusion_csv(f, str(plots_dir)))
        write_text(path, buf.getvalue())
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------
# Rendering


def library_versions() -> dict[str, str]:
    versions = {}
    for name in REPORT_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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


def ablation_context(ablation: dict | None, page: Path) -> dict | None:
    """The template's view of the ablation: the sentences and a link relative to ``page``'s folder."""
    if ablation is None:
        return None
    href = Path(os.path.relpath(ablation["markdown"], Path(page).parent)).as_posix()
    return {"sentences": ablation["sentences"], "link": md_link(href, href)}


def render_markdown(inp: Inputs, analysis: dict, figure_src: dict[str, str], ablation: dict | None = None) -> str:
    train = inp.params["train"]
    shown_params = {key: inp.params[key] for key in ("frameworks", "seeds", "model", "train") if key in inp.params}
    shown_params["data"] = {
        k: v for k, v in inp.params["data"].items() if k not in ("sources", "download_timeout", "download_retries")
    }
    context = {
        "a": analysis,
        "fw": analysis["frameworks"],
        "pair": analysis["pair"],
        "seeds": inp.seeds,
        "frameworks": inp.frameworks,
        "params": inp.params,
        "train": train,
        "model": inp.params["model"],
        "article": {"published": article.PUBLISHED, "code": article.CODE, "truncation": article.TRUNCATED_ACCURACY},
        "alpha": stats.ALPHA,
        "wilcoxon_method_words": stats.WILCOXON_METHOD_WORDS,
        "cache": inp.cache_meta,
        "figure": {name: image_link(name, src) for name, src in figure_src.items()},
        "params_yaml": yaml.safe_dump(shown_params, sort_keys=False),
        "libraries": library_versions(),
        "eps_steps": f"{keras_eps_steps(train['betas'][1]):,}",
        "ablation": ablation,
    }
    return environment().get_template("report.md.j2").render(context)


TITLE = "TensorFlow vs PyTorch: LeNet-5 on Fashion-MNIST, a controlled comparison"


def build(
    params: dict,
    runs_dir: Path,
    predictions_dir: Path,
    cache: Path,
    out_md: Path,
    out_html: Path,
    out_metrics: Path,
    figures_dir: Path,
    plots_dir: Path,
    ablation: Path | None = None,
) -> dict:
    """Run the whole report step; returns the summary written to ``out_metrics``.

    ``ablation``: reports/ablation.json, optional; when given, the report summarizes it in a
    section of its own and links its Markdown report.
    """
    abl = load_ablation(Path(ablation)) if ablation is not None else None
    inp = load_inputs(params, Path(runs_dir), Path(predictions_dir), Path(cache))
    analysis = analyze(inp)
    paths = make_figures(inp, analysis, Path(figures_dir))
    write_confusion_csvs(inp, Path(plots_dir))
    # The .md links figures relative to its own folder (reports/report.md -> figures/x.png).
    rel = os.path.relpath(Path(figures_dir), Path(out_md).parent)
    md_src = {name: f"{Path(rel).as_posix()}/{path.name}" for name, path in paths.items()}
    write_text(out_md, render_markdown(inp, analysis, md_src, ablation_context(abl, Path(out_md))))
    html_src = {name: data_uri(path) for name, path in paths.items()}
    html_md = render_markdown(inp, analysis, html_src, ablation_context(abl, Path(out_html)))
    write_text(out_html, markdown_to_html(html_md, TITLE))
    summary = summary_metrics(analysis)
    write_json(out_metrics, summary)
    for line in (analysis["pair"] or {}).get("verdict", []):
        log.info("%s", line)
    return summary
