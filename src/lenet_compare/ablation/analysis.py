"""The ablation's numbers: where the article's TensorFlow-minus-PyTorch gap came from.

Input: lenet_compare.ablation.inputs.load_results's numbers per (framework, seed, run id). Which
run a framework has at a step, and how its accuracy was reported there, come from
lenet_compare.ablation.factors; this module pairs by seed and summarizes.

All accuracies here are in percent and all gaps and changes in percentage points, as the
article's code *reported* them at that step: PyTorch's accuracy is integer-truncated
(``100 * correct // total``) until the ``accuracy`` step moves it to the exact fraction.

Per step k and seed s: gap_k(s) = reported TensorFlow - reported PyTorch. Per step k >= 1:
the change delta_k(s) = gap_k(s) - gap_{k-1}(s), paired by seed. The deltas add up to the
total change from the article's setup to the controlled protocol (checked).
"""

from __future__ import annotations

import numpy as np

from lenet_compare.ablation import factors, sentences
from lenet_compare.core import article
from lenet_compare.core.article import PAIR
from lenet_compare.core.frameworks import FRAMEWORK_NAMES
from lenet_compare.core.numbers import denoised, numbers, one_or_all
from lenet_compare.report import stats

SUM_TOLERANCE = 1e-9  # points: the deltas must add up to the total change within this
TITLE = "The article's TensorFlow-minus-PyTorch gap, explained one factor at a time"


def summary(values, what: str = "seed") -> dict:
    """stats.summarize over seeds, with a note that speaks of seeds and a 95 % prediction interval.

    The values are denoised first (core.numbers: a change of exactly zero stays zero, never
    "-0.00"). The prediction interval (stats.prediction_interval) is where one more seed's value
    would fall 95 % of the time: what a single published run is compared with.
    """
    values = denoised(values)
    out = stats.summarize(values)
    n = out["n"]
    if n == 1:
        out["note"] = f"one {what}: no standard deviation or confidence interval"
    elif out["note"]:
        out["note"] = f"the same value in all {n} {what}s: no spread, the interval is the value itself"
    out["pi_low"] = out["pi_high"] = None
    if n >= 2:
        out["pi_low"], out["pi_high"] = stats.prediction_interval(out["mean"], out["std"], n)
    out["values"] = values
    return out


def analyze(params: dict, results: dict) -> dict:
    """Every number of the ablation report, as plain JSON-ready data (percent and points), and its words."""
    seeds = list(params["ablation"]["seeds"])
    steps = step_entries(params, results)
    gap = _article_gap()
    largest = max(steps[1:], key=lambda e: abs(e["change"]["mean"]), default=None)
    analysis = {
        "title": TITLE,
        "units": "accuracies in percent, gaps and changes in percentage points (TensorFlow minus PyTorch)",
        "frameworks": {f: FRAMEWORK_NAMES[f] for f in PAIR},
        "seeds": seeds,
        "n_seeds": len(seeds),
        "n_test": next(iter(results.values()))["n_test"],
        "confidence": stats.CONFIDENCE,
        "article": {f: {k: article.PUBLISHED[f][k] for k in ("shown", "low", "high", "how")} for f in PAIR}
        | {"gap": gap},
        "controlled": factors.controlled(params),
        "steps": steps,
        "reproduction": reproduction(steps[0], gap, len(seeds)),
        "total": total_change(steps),
        "largest_step": largest["step"] if largest else None,
        "run_ids": {f: list(dict.fromkeys(e["run_ids"][f] for e in steps)) for f in PAIR},
        "how_run": how_run(params, results, steps),
    }
    analysis["conclusion"] = sentences.conclusion(analysis)
    analysis["summary"] = sentences.summary_sentences(analysis)
    return analysis


def _reported(results: dict, params: dict, f: str, s: int, step: str) -> tuple[float, float]:
    """(reported %, exact %) of framework ``f``, seed ``s`` at ``step``."""
    r = results[(f, s, factors.run_id(params, f, step))]
    how = factors.settings(params, f, step)["accuracy"]
    return factors.reported_accuracy(r["n_correct"], r["n_test"], how), 100 * r["n_correct"] / r["n_test"]


def within(low: float, high: float, lo: float | None, hi: float | None, open_high: bool) -> str | None:
    """Where the article's value [low, high] (high excluded when ``open_high``) lies relative to [lo, hi].

    "inside": wholly within; "overlaps": partly; "above" / "below": outside; None: no interval.
    """
    if lo is None or hi is None:
        return None
    if lo <= low and high <= hi:
        return "inside"
    if low > hi:
        return "above"
    if high < lo or (open_high and high == lo and high > low):
        return "below"
    return "overlaps"


def _against_article(ours: dict, low: float, high: float, open_high: bool = False) -> dict:
    return {
        "article_low": low,
        "article_high": high,
        "article_high_excluded": open_high,
        "in_range": within(low, high, ours["min"], ours["max"], open_high),
        "in_prediction_interval": within(low, high, ours["pi_low"], ours["pi_high"], open_high),
    }


def step_entries(params: dict, results: dict) -> list[dict]:
    """One entry per step, the article's setup first: what it moves, each framework's accuracy, the gap."""
    steps: list[dict] = []
    for k, step in enumerate(factors.step_names(params)):
        steps.append(_step_entry(params, results, k, step, before=steps[-1] if steps else None))
    return steps


def _step_entry(params: dict, results: dict, k: int, step: str, before: dict | None) -> dict:
    """Step ``step`` (number ``k``): its settings and runs, accuracies, gap and change from ``before``."""
    pt, tf = PAIR
    entry: dict = {
        "index": k,
        "step": step,
        "factor": None if k == 0 else step,
        "label": "the article's setup" if k == 0 else article.FACTOR_LABELS[step],
        "settings": {f: factors.settings(params, f, step) for f in PAIR},
        "run_ids": {f: factors.run_id(params, f, step) for f in PAIR},
    }
    entry["accuracy"] = {f: _step_accuracy(params, results, f, step, entry) for f in PAIR}
    gaps = np.subtract(entry["accuracy"][tf]["reported"]["values"], entry["accuracy"][pt]["reported"]["values"])
    entry["gap"] = summary(gaps)
    if before is None:
        entry.update(retrained=list(PAIR), reporting_changed=[], no_op=[], change=None, framework_change=None)
    else:
        entry["retrained"] = [f for f in PAIR if entry["run_ids"][f] != before["run_ids"][f]]
        entry["reporting_changed"] = [
            f for f in PAIR if entry["settings"][f]["accuracy"] != before["settings"][f]["accuracy"]
        ]
        # Moved, yet neither retrained nor reported differently: a factor proven not to change
        # training (factors.TRAINING_NEUTRAL, Keras's softmax head).
        entry["no_op"] = [
            f
            for f in PAIR
            if entry["settings"][f] != before["settings"][f]
            and f not in entry["retrained"]
            and f not in entry["reporting_changed"]
        ]
        entry["change"] = summary(np.subtract(entry["gap"]["values"], before["gap"]["values"]))
        # What the step did to each framework's own accuracy, paired by seed. Exact accuracies:
        # a change of reporting (truncation) is not something the factor did to training.
        entry["framework_change"] = {
            f: summary(np.subtract(entry["accuracy"][f]["exact"]["values"], before["accuracy"][f]["exact"]["values"]))
            for f in PAIR
        }
    entry["what_changed"] = sentences.what_changed(entry)
    return entry


def _step_accuracy(params: dict, results: dict, f: str, step: str, entry: dict) -> dict:
    """Framework ``f``'s accuracy at ``step`` over the ablation's seeds: as its code reports it, and exact."""
    seeds = params["ablation"]["seeds"]
    per = [_reported(results, params, f, s, step) for s in seeds]
    runs = [results[(f, s, entry["run_ids"][f])] for s in seeds]
    return {
        "how": entry["settings"][f]["accuracy"],
        "reported": summary([p[0] for p in per]),
        "exact": summary([p[1] for p in per]),
        "n_parameters": one_or_all(r["n_parameters"] for r in runs),
        "seconds_per_epoch_mean": _mean(r["seconds_per_epoch"] for r in runs),
    }


def total_change(steps: list[dict]) -> dict:
    """From the article's setup to the controlled protocol: the gaps, the change, and the steps' sum checked."""
    first, last = steps[0], steps[-1]
    total = summary(np.subtract(last["gap"]["values"], first["gap"]["values"]))
    step_sum = float(sum(e["change"]["mean"] for e in steps[1:]))
    per_seed_sum = (
        np.sum([e["change"]["values"] for e in steps[1:]], axis=0)
        if len(steps) > 1
        else np.zeros(len(first["gap"]["values"]))
    )
    check_ok = bool(
        abs(step_sum - total["mean"]) <= SUM_TOLERANCE
        and np.allclose(per_seed_sum, total["values"], rtol=0, atol=SUM_TOLERANCE)
    )
    if not check_ok:  # an identity: failing it means a bug here, not a bad input
        raise AssertionError(f"the steps' changes add up to {step_sum} points, the total change is {total['mean']}")
    return {
        "article_gap": first["gap"],
        "controlled_gap": last["gap"],
        "change": total,
        "sum_of_step_changes": step_sum,
        "sum_check_ok": check_ok,
    }


def _article_gap() -> dict:
    """The article's gap as printed and as the interval it allows, in points.

    Denoised like our gaps, so that the article's printed gap and an equal one of ours compare equal.
    """
    gap = article.gap()
    low, high = denoised([gap["low"], gap["high"]])
    return {"printed": denoised([article.printed_gap()])[0], "low": low, "high": high}


def reproduction(first: dict, gap: dict, n_seeds: int) -> dict:
    """The article's setup as reproduced here (the first step), set against the article's numbers."""
    out: dict = {f: _reproduced(f, first["accuracy"][f]) for f in PAIR}
    out["gap"] = {
        "article_printed": gap["printed"],
        "article_low": gap["low"],
        "article_high": gap["high"],
        "reported": first["gap"],
        "reported_vs_article": _against_article(first["gap"], gap["printed"], gap["printed"]),
    }
    out["note"] = sentences.small_n_note(n_seeds)
    return out


def _reproduced(f: str, accuracy: dict) -> dict:
    published = article.PUBLISHED[f]
    return {
        "name": FRAMEWORK_NAMES[f],
        "article_shown": published["shown"],
        "article_how": published["how"],
        "how": accuracy["how"],
        "reported": accuracy["reported"],
        "exact": accuracy["exact"],
        "n_parameters": accuracy["n_parameters"],
        # Like with like: the article's printed number against our numbers printed the same way.
        "reported_vs_article": _against_article(accuracy["reported"], published["low"], published["low"]),
        # The true accuracy the article's printed number allows (89 -> [89, 90)) against our exact ones.
        "exact_vs_article": _against_article(
            accuracy["exact"], published["low"], published["high"], published["high"] > published["low"]
        ),
    }


def _mean(values) -> float | None:
    x = numbers(values)
    return float(np.mean(x)) if x else None


def _sum(values) -> float | None:
    x = numbers(values)
    return float(sum(x)) if x else None


def how_run(params: dict, results: dict, steps: list[dict]) -> dict:
    """Seeds, epochs, batch and device per framework, from the run records."""
    out = {}
    seeds = params["ablation"]["seeds"]
    for f in PAIR:
        rids = list(dict.fromkeys(e["run_ids"][f] for e in steps))
        runs = [results[(f, s, rid)] for rid in rids for s in seeds]
        epochs = sorted({r["epochs"] for r in runs if r["epochs"] is not None})
        devices = list(dict.fromkeys(r["device"] for r in runs if r["device"]))
        out[f] = {
            "runs": len(runs),
            "epochs": ", ".join(map(str, epochs)) if epochs else None,
            "device": ", ".join(devices) if devices else None,
            "train_seconds": _sum(r["train_seconds"] for r in runs),
        }
    out["batch_size"] = params["train"]["batch_size"]
    out["lr"] = params["train"]["lr"]
    out["epochs_param"] = params["train"]["epochs"]
    return out
