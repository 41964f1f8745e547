"""The report's numbers: per framework over seeds, per pair of frameworks paired by seed, inference.

Every framework of params.yaml's ``frameworks`` gets its accuracy, loss, macro F1, timings, device
and environment over the seeds. Every pair (a, b) of frameworks (``framework_pairs``: the article's
pair first, then the others in the order of ``frameworks``) gets its differences b - a by seed, the
paired t-test, Wilcoxon and TOST (stats), and McNemar and the agreement per seed. The paired
t-test's and the TOST's p-values are adjusted over the pairs by Holm's method; the verdicts
(sentences) and the equivalence decision use the adjusted p-values, which with one pair are the
p-values themselves. Plain data throughout: the template, metrics_file and the figures read it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from lenet_compare.core import article
from lenet_compare.core.frameworks import name as framework_name
from lenet_compare.core.numbers import number_or_none, numbers, one_or_all
from lenet_compare.evaluate.classification import classification_metrics
from lenet_compare.evaluate.inference_timing import BATCH_SIZES, FASTEST, NAIVE
from lenet_compare.report import sentences, stats
from lenet_compare.report.common import PAIR, device_text, pair_key
from lenet_compare.report.inputs import Inputs

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


def joined(values):
    """The one value all runs share (kept as it is), or the distinct values joined by commas; None for none."""
    shared = one_or_all(values)
    return ", ".join(map(str, shared)) if isinstance(shared, list) else shared


def _mean_std(values: list) -> tuple[float | None, float | None]:
    x = numbers(values)
    if not x:
        return None, None
    return float(np.mean(x)), (float(np.std(x, ddof=1)) if len(x) > 1 else None)


def framework_pairs(frameworks: list[str]) -> list[tuple[str, str]]:
    """Every pair (a, b) of ``frameworks``, compared as b minus a.

    The article's pair (core.article.PAIR: TensorFlow minus PyTorch) comes first when both are
    present, whatever their order in ``frameworks``; the others follow in that order:
    [torch, tensorflow, jax] gives (torch, tensorflow), (torch, jax), (tensorflow, jax).
    """
    pairs = [PAIR] if all(f in frameworks for f in PAIR) else []
    for i, a in enumerate(frameworks):
        pairs += [(a, b) for b in frameworks[i + 1 :] if {a, b} != set(PAIR)]
    return pairs


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
            row[column] = number_or_none((r.run if where == "run" else r.metrics).get(key))
        rows.append(row)
    return pd.DataFrame(rows)


def analyze(inp: Inputs) -> dict:
    """Every number of the report, as plain data (also what the template sees)."""
    table = runs_table(inp)
    acc = {f: {s: inp.runs[(f, s)].metrics["test_accuracy"] for s in inp.seeds} for f in inp.frameworks}
    per_run = {key: classification_metrics(inp.y_test, r.y_pred, inp.class_names) for key, r in inp.runs.items()}
    pairs = pairs_analysis(inp, acc)
    first = np.array([inp.runs[(f, inp.seeds[0])].y_pred for f in inp.frameworks])
    return {
        "frameworks": {f: framework_summary(inp, table, acc[f], per_run, f) for f in inp.frameworks},
        "seeds": inp.seeds,
        "n_test": len(inp.y_test),
        "class_names": inp.class_names,
        "per_run": per_run,
        "table": table,
        "pairs": pairs,
        "pair": next((p for p in pairs if (p["a"], p["b"]) == PAIR), None),  # the article's
        # Test images of the first seed on which the frameworks do not all predict the same class.
        "n_disagree_first_seed": int(np.sum(np.any(first != first[0], axis=0))),
        "inference": inference_summary(inp, [(p["a"], p["b"]) for p in pairs]),
    }


def framework_summary(inp: Inputs, table: pd.DataFrame, acc: dict, per_run: dict, f: str) -> dict:
    """One framework over the seeds: accuracy, loss, macro F1, timings, device and environment."""
    rows = table[table["framework"] == f]
    timing = {}
    for column in TIMING_FIELDS:
        mean, std = _mean_std(rows[column].tolist())
        timing[column] = {"mean": mean, "std": std}
    runs_f = [inp.runs[(f, s)].run for s in inp.seeds]
    return {
        "name": framework_name(f),
        "accuracy": stats.summarize([acc[s] for s in inp.seeds]),
        "per_seed": {s: acc[s] for s in inp.seeds},
        "test_loss_mean": float(rows["test_loss"].mean()),
        "test_loss_per_seed": {s: inp.runs[(f, s)].metrics["test_loss"] for s in inp.seeds},
        "macro_f1_mean": float(np.mean([per_run[(f, s)]["macro_f1"] for s in inp.seeds])),
        "timing": timing,
        "device": joined(device_text(r) for r in runs_f),
        "environment": {key: joined(r.get(key) for r in runs_f) for key in ENVIRONMENT_KEYS},
        "n_parameters": joined(r.get("n_parameters") for r in runs_f),
    }


def pairs_analysis(inp: Inputs, acc: dict) -> list[dict]:
    """Every pair of frameworks paired by seed, its p-values adjusted over the pairs, its verdict."""
    pairs = [pair_analysis(inp, acc, a, b) for a, b in framework_pairs(inp.frameworks)]
    t_holm = stats.holm([p["paired"]["t_pvalue"] for p in pairs])
    tost_holm = stats.holm([p["equivalence"]["pvalue"] for p in pairs])
    t_family, tost_family = sum(p is not None for p in t_holm), sum(p is not None for p in tost_holm)
    for p, t_adjusted, tost_adjusted in zip(pairs, t_holm, tost_holm, strict=True):
        p["paired"] |= {"t_pvalue_holm": t_adjusted, "holm_pairs": t_family}
        eq = p["equivalence"]
        # stats decided on the unadjusted p: within the margin at 90 %. The verdict is the adjusted p's.
        eq |= {
            "pvalue_holm": tost_adjusted,
            "holm_pairs": tost_family,
            "within_margin": eq["equivalent"],
            "equivalent": None if tost_adjusted is None else bool(tost_adjusted < stats.ALPHA),
        }
        p["verdict"] = sentences.verdict(p["paired"], p["mcnemar"], p["name_a"], p["name_b"], equivalence=eq)
        if p["article_gap"] is not None:
            p["verdict"].append(sentences.article_comparison(p["article_gap"], p["paired"]))
    return pairs


def pair_analysis(inp: Inputs, acc: dict, a: str, b: str) -> dict:
    """b against a, paired by seed: the tests, McNemar per seed and, for the article's pair, its gap.

    The p-values are not adjusted yet, and there is no verdict yet: pairs_analysis adds both.
    """
    paired = stats.paired_tests(acc[a], acc[b])
    # The margin is in points (params.yaml), the accuracies are fractions.
    margin_points = inp.params["report"]["equivalence_margin"]
    equivalence = stats.equivalence_test(acc[a], acc[b], margin_points / 100)
    mcn = {s: stats.mcnemar_test(inp.y_test, inp.runs[(a, s)].y_pred, inp.runs[(b, s)].y_pred) for s in inp.seeds}
    pvals = [m["pvalue"] for m in mcn.values() if m["pvalue"] is not None]
    return {
        "a": a,
        "b": b,
        "name_a": framework_name(a),
        "name_b": framework_name(b),
        "key": pair_key(a, b),
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
        "article_gap": article.gap() if (a, b) == PAIR else None,
    }


def inference_summary(inp: Inputs, pairs: list[tuple[str, str]]) -> dict:
    """The naive and the fastest idiomatic inference call per framework and batch size, over the
    seeds (each run's metrics.json ``inference.rows``), and per pair the sentence comparing
    fastest with fastest.
    """
    rows = []
    for f in inp.frameworks:
        for size in BATCH_SIZES:
            for path in (NAIVE, FASTEST):
                found = [
                    r
                    for s in inp.seeds
                    for r in inp.runs[(f, s)].metrics["inference"]["rows"]
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
                        "name": framework_name(f),
                        "batch_size": size,
                        "path": path,
                        "calls": [{"call": call, "runs": n} for call, n in calls.items()],
                        "n_runs": len(found),
                        "timed_calls": joined(r.get("timed_calls") for r in found),
                        "median_ms": {"mean": ms[0], "std": ms[1]},
                        "images_per_second": {"mean": per_second[0], "std": per_second[1]},
                    }
                )
    timed_calls = {size: joined(r["timed_calls"] for r in rows if r["batch_size"] == size) for size in BATCH_SIZES}
    found_sentences = (sentences.fastest_with_fastest(rows, pair) for pair in pairs)
    return {"rows": rows, "timed_calls": timed_calls, "sentences": [s for s in found_sentences if s is not None]}
