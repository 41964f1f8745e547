"""Run files as the train and evaluate steps write them (docs/design.md, "Files"), made up for the report tests.

Predictions are random but real-looking: each framework gets each test image right with a chosen
probability, and its metrics.json says exactly what its predictions score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import tiny_params

from lenet_compare.core.article import PAIR
from lenet_compare.data.dataset import load_prepared
from lenet_compare.evaluate.classification import classification_metrics

# Made-up runs of every framework, so the report's code for any number of frameworks is tested
# without training (the tiny real runs are in conftest).
ACCURACY = {"torch": 0.86, "tensorflow": 0.87, "jax": 0.865}
# The calls evaluate's inference timing names (lenet_compare.evaluate.inference_timing), per framework.
NAIVE_CALL = {"torch": "model(x)", "tensorflow": "model(x, training=False)", "jax": "model.apply(params, x)"}
FASTEST_CALL = {
    "torch": "with torch.inference_mode(): model(x)",
    "tensorflow": "tf.function(model)(x)",
    "jax": "jax.jit(model.apply)(params, x)",
}


def params_for(frameworks=("torch", "tensorflow"), seeds=(0, 1, 2), epochs=3, **train) -> dict:
    params = tiny_params()
    params["frameworks"] = list(frameworks)
    params["seeds"] = list(seeds)
    params["train"]["epochs"] = epochs
    params["train"].update(train)
    return params


def _predictions(y_true: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    right = rng.random(y_true.size) < accuracy
    wrong_class = (y_true + rng.integers(1, 10, y_true.size)) % 10
    return np.where(right, y_true, wrong_class).astype(np.int64)


def inference_rows(framework: str, latency_ms: float, images_per_second: float) -> list[dict]:
    """metrics.json's ``inference.rows`` as the evaluate step writes them, made from the run's two
    summary numbers (no random draw): the fastest idiomatic call at batch 1 and 1,000, and the naive
    call beside it at half the speed."""
    rows = []
    for size, fastest_ms, calls in ((1, latency_ms, 200), (1000, 1000 * 1000 / images_per_second, 20)):
        for path, call, ms in (
            ("naive", NAIVE_CALL[framework], 2 * fastest_ms),
            ("fastest idiomatic", FASTEST_CALL[framework], fastest_ms),
        ):
            rows.append(
                {"path": path, "call": call, "batch_size": size, "median_ms": ms,
                 "images_per_second": size * 1000 / ms, "timed_calls": calls}
            )  # fmt: skip
    return rows


def write_runs(
    root: Path,
    cache: Path,
    params: dict,
    accuracy: dict[str, float] | None = None,
    device_name: str = "CPU",
    rng_seed: int = 0,
    extra_run: dict | None = None,
) -> tuple[Path, Path]:
    """Write reports/runs/... and data/predictions/... under ``root``; return the two folders."""
    accuracy = accuracy or ACCURACY
    arrays, meta = load_prepared(cache)
    y_true = arrays["y_test"]
    n_train = len(arrays["y_train"])
    runs_dir, pred_dir = root / "reports" / "runs", root / "data" / "predictions"
    rng = np.random.default_rng(rng_seed)
    epochs = params["train"]["epochs"]
    for f in params["frameworks"]:
        for seed in params["seeds"]:
            y_pred = _predictions(y_true, accuracy[f] + rng.normal(0, 0.01), rng)
            logits = rng.normal(0, 1, (y_true.size, 10)).astype(np.float32)
            logits[np.arange(y_true.size), y_pred] += 10  # argmax = y_pred
            (pred_dir / f).mkdir(parents=True, exist_ok=True)
            np.savez(pred_dir / f / f"seed{seed}.npz", y_pred=y_pred, logits=logits)

            folder = runs_dir / f / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            epoch_seconds = rng.uniform(1.0, 2.0, epochs) * (1.2 if f == "tensorflow" else 1.0)
            train_seconds = float(epoch_seconds.sum())
            metrics = {
                "framework": f,
                "seed": seed,
                "test_accuracy": float(np.mean(y_pred == y_true)),
                "test_loss": float(rng.uniform(0.3, 0.5)),
                "n_test": int(y_true.size),
                "train_seconds": train_seconds,
                "inference_images_per_second": float(rng.uniform(20_000, 40_000)),
                "latency_ms_single_image": float(rng.uniform(0.2, 0.6)),
                **classification_metrics(y_true, y_pred, meta["class_names"]),
            }
            metrics["inference"] = {
                "rows": inference_rows(f, metrics["latency_ms_single_image"], metrics["inference_images_per_second"])
            }
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
            t = np.arange(1, epochs + 1)
            lines = ["epoch,train_loss,train_accuracy,val_loss,val_accuracy,epoch_seconds"]
            for e, sec in zip(t, epoch_seconds, strict=True):
                base = accuracy[f] - 0.2 / e
                lines.append(
                    f"{e},{1.0 / e + rng.normal(0, 0.01):.6f},{base + rng.normal(0, 0.005):.6f},"
                    f"{1.1 / e + rng.normal(0, 0.01):.6f},{base + rng.normal(0, 0.005):.6f},{sec:.6f}"
                )
            (folder / "history.csv").write_text("\n".join(lines) + "\n")
            run = {
                "framework": f,
                "framework_version": "2.14.1" if f == "torch" else "2.21.0",
                "python_version": "3.11.2",
                "numpy_version": "2.4.6",
                "device": "cpu",
                "device_name": device_name,
                "n_parameters": 61706,
                "seed": seed,
                "epochs": epochs,
                "batch_size": params["train"]["batch_size"],
                "n_train": n_train,
                "train_seconds": train_seconds,
                "wall_seconds": train_seconds + 3.0,
                "seconds_per_epoch": train_seconds / epochs,
                "images_per_second": n_train * epochs / train_seconds,
                "peak_rss_mb": float(rng.uniform(500, 900)),
                "peak_gpu_memory_mb": None,
                "init": params["train"]["init"],
                "order": params["train"]["order"],
                "deterministic": params["train"]["deterministic"],
                "tf32": params["train"]["tf32"],
                "params": {"model": params["model"], "train": params["train"]},  # as the train step records it
                **(extra_run or {}),
            }
            (folder / "run.json").write_text(json.dumps(run, indent=2))
    return runs_dir, pred_dir


# The ablation's runs (workflow/scripts/ablation_train.py's format), made up: n_correct of 10,000
# test images per framework of the article's pair, run id and ablation seed (0, 1, 2). "main" is the
# main pipeline's run.
ABLATION_N_TEST = 10_000
HISTORY_ROW = {
    "epoch": 1,
    "train_loss": 1.0,
    "train_accuracy": 0.8,
    "val_loss": 1.0,
    "val_accuracy": 0.8,
    "epoch_seconds": 10.0,
}
ABLATION_CORRECT = {
    "torch": {
        "article": [8997, 8950, 9012],  # 89.97 % is printed as 89 by the article's code
        "init": [9020, 8990, 9041],
        "main": [9070, 9049, 9080],
    },
    "tensorflow": {
        "article": [9134, 9120, 9151],
        "eps": [9099, 9090, 9122],
        "padding": [9060, 9041, 9077],
        "init": [9065, 9052, 9070],
        "main": [9072, 9060, 9066],
    },
}


def write_ablation_runs(
    root: Path, params: dict, correct: dict | None = None, device_name: str = "CPU", n_test: int = ABLATION_N_TEST
) -> tuple[Path, Path]:
    """Write the ablation's run records and the main runs' metrics.json / run.json; return the two folders.

    One record per (framework, seed, run) at lenet_compare.core.layout.ablation_run_file, as
    workflow/scripts/ablation_train.py writes it; the runs' settings are those
    lenet_compare.ablation.factors gives each run id; every seed of ``params["ablation"]["seeds"]``
    takes the numbers at its position in ``correct``.
    """
    from lenet_compare.ablation import factors
    from lenet_compare.core import layout

    correct = correct or ABLATION_CORRECT
    runs_dir, main_dir = root / "reports" / "ablation" / "runs", root / "reports" / "runs"
    epochs = params["train"]["epochs"]
    for f in PAIR:
        for i, seed in enumerate(params["ablation"]["seeds"]):
            for rid in factors.runs_to_train(params, f):
                n = correct[f][rid][i]
                settings = factors.settings(params, f, rid)
                record = {
                    "framework": f,
                    "framework_version": "2.14.1" if f == "torch" else "2.21.0",
                    "python_version": "3.11.2",
                    "seed": seed,
                    "run": rid,
                    "device": "cpu",
                    "device_name": device_name,
                    "epochs": epochs,
                    "batch_size": params["train"]["batch_size"],
                    "n_train": 55_000,
                    "wall_seconds": 10.0 * epochs + 5.0,
                    "settings": settings,
                    "n_parameters": 107786 if settings["padding"] == [2, 2] else 61706,
                    "n_correct": n,
                    "n_test": n_test,
                    "test_accuracy": n / n_test,
                    "test_loss": 0.3,
                    "train_seconds": 10.0 * epochs,
                    "seconds_per_epoch": 10.0,
                    "history": [
                        dict(HISTORY_ROW, epoch=e, train_loss=1 / e, val_loss=1 / e) for e in range(1, epochs + 1)
                    ],
                }
                path = layout.ablation_run_file(f, seed, rid, runs_dir)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, indent=2))

            folder = main_dir / f / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            n = correct[f]["main"][i]
            metrics = {"framework": f, "seed": seed, "n_test": n_test, "n_correct": n, "test_accuracy": n / n_test,
                       "test_loss": 0.3, "train_seconds": 10.0 * epochs}  # fmt: skip
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
            run = {"framework": f, "seed": seed, "device": "cpu", "device_name": device_name, "n_parameters": 61706,
                   "epochs": epochs, "train_seconds": 10.0 * epochs, "seconds_per_epoch": 10.0,
                   "params": {"model": params["model"], "train": params["train"]}}  # fmt: skip
            (folder / "run.json").write_text(json.dumps(run, indent=2))
    return runs_dir, main_dir
