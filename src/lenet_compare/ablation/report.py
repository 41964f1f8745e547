"""The ablation's statistics, report and figure: where the article's TensorFlow-minus-PyTorch gap came from.

Inputs: reports/ablation/runs/{framework}/seed{seed}.json (the ablation's own runs, one file per
framework and seed, keyed by run id; workflow/scripts/ablation_train.py writes them) and, for the
run id ``factors.MAIN``, the main pipeline's reports/runs/{framework}/seed{seed}/{metrics,run}.json.
Which run a framework has at a step, and how its accuracy was reported there, come from
lenet_compare.ablation.factors; this module only reads, pairs by seed and summarizes.

All accuracies here are in percent and all gaps and changes in percentage points, as the
article's code *reported* them at that step: PyTorch's accuracy is integer-truncated
(``100 * correct // total``) until the ``accuracy`` step moves it to the exact fraction.

Per step k and seed s: gap_k(s) = reported TensorFlow - reported PyTorch. Per step k >= 1:
the change delta_k(s) = gap_k(s) - gap_{k-1}(s), paired by seed. The deltas add up to the
total change from the article's setup to the controlled protocol (checked).

Framework-free: reads files only, never imports torch or tensorflow.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lenet_compare.ablation import factors
from lenet_compare.core import article
from lenet_compare.core.atomic import write_json, write_text
from lenet_compare.core.errors import PipelineError
from lenet_compare.report import figures, stats
from lenet_compare.report.common import FRAMEWORK_NAMES, PAIR, device_text, read_json, require_files
from lenet_compare.report.render import environment, image_link

log = logging.getLogger(__name__)

TRAINING_FACTORS = tuple(f for f in article.FACTORS if f != "accuracy")  # what a run's training depends on
# Gaps and changes are differences of correct / total in percent: rounding to 10 decimals removes
# float noise (a change of exactly zero stays zero, never "-0.00") without touching any real value.
_DECIMALS = 10
SUM_TOLERANCE = 1e-9  # points: the deltas must add up to the total change within this
TITLE = "The article's TensorFlow-minus-PyTorch gap, explained one factor at a time"


# ----------------------------------------------------------------------------------------------
# Reading the runs


def ablation_file(runs_dir: Path, framework: str, seed: int) -> Path:
    return Path(runs_dir) / framework / f"seed{seed}.json"


def main_files(main_runs_dir: Path, framework: str, seed: int) -> dict[str, Path]:
    folder = Path(main_runs_dir) / framework / f"seed{seed}"
    return {"metrics": folder / "metrics.json", "run": folder / "run.json"}


def _count(value, what: str, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise PipelineError(f"{where}: {what} must be a non-negative integer, got {value!r}")
    return int(value)


def _result(record: dict, where: Path) -> dict:
    """The numbers of one run this module uses: n_correct, n_test and what describes the run."""
    n_test = _count(record.get("n_test"), "n_test", where)
    if "n_correct" in record:
        n_correct = _count(record["n_correct"], "n_correct", where)
    elif isinstance(record.get("test_accuracy"), int | float):
        n_correct = round(record["test_accuracy"] * n_test)
    else:
        raise PipelineError(f"{where} lacks n_correct (and test_accuracy)")
    if n_test == 0 or n_correct > n_test:
        raise PipelineError(f"{where}: n_correct = {n_correct} of n_test = {n_test} is not an accuracy")
    if (
        isinstance(record.get("test_accuracy"), int | float)
        and abs(record["test_accuracy"] - n_correct / n_test) > 1e-9
    ):
        raise PipelineError(
            f"{where}: test_accuracy = {record['test_accuracy']} but n_correct / n_test = {n_correct / n_test}"
        )
    history = record.get("history")
    return {
        "n_correct": n_correct,
        "n_test": n_test,
        "n_parameters": record.get("n_parameters"),
        "seconds_per_epoch": record.get("seconds_per_epoch"),
        "train_seconds": record.get("train_seconds"),
        "epochs": len(history) if isinstance(history, list) and history else record.get("epochs"),
        "device": device_text(record) if (record.get("device") or record.get("device_name")) else None,
    }


def _differing(recorded: dict, expected: dict) -> list[str]:
    # Through JSON, as the run file holds them: tuples become lists.
    expected = json.loads(json.dumps(expected))
    return [k for k in TRAINING_FACTORS if not isinstance(recorded, dict) or recorded.get(k) != expected[k]]


RERUN_ABLATION = "rerun the ablation's training (dvc repro / snakemake)"
RERUN_MAIN = "rerun the main pipeline's train and evaluate steps"


def load_results(params: dict, runs_dir: Path, main_runs_dir: Path) -> dict[tuple[str, int, str], dict]:
    """(framework, seed, run id) -> that run's numbers, for every run some step needs.

    One PipelineError lists all missing files at once; a run trained with other settings than
    params.yaml's ablation asks for is stale and named.
    """
    seeds = list(params["ablation"]["seeds"])
    needed = {f: list(dict.fromkeys(factors.run_id(params, f, s) for s in factors.step_names(params))) for f in PAIR}
    trained = {f: [rid for rid in needed[f] if rid != factors.MAIN] for f in PAIR}
    paths = []
    for f in PAIR:
        for s in seeds:
            if trained[f]:
                paths.append(ablation_file(runs_dir, f, s))
            if factors.MAIN in needed[f]:
                paths.extend(main_files(main_runs_dir, f, s).values())
    require_files(
        paths,
        "the ablation report",
        "run the ablation's training and the main pipeline's train and evaluate steps for ablation.seeds first",
    )
    results = {}
    for f in PAIR:
        for s in seeds:
            if trained[f]:
                for rid, result in _ablation_results(params, ablation_file(runs_dir, f, s), f, s, trained[f]).items():
                    results[(f, s, rid)] = result
            if factors.MAIN in needed[f]:
                results[(f, s, factors.MAIN)] = _main_result(params, main_files(main_runs_dir, f, s))
    n_tests = {r["n_test"] for r in results.values()}
    if len(n_tests) != 1:
        raise PipelineError(
            f"the runs were tested on different numbers of test images ({', '.join(map(str, sorted(n_tests)))}): "
            "they come from different prepared caches; rerun the stale ones"
        )
    return results


def _ablation_results(params: dict, path: Path, f: str, s: int, run_ids: list[str]) -> dict[str, dict]:
    """Run id -> numbers, for the ablation's own runs ``run_ids`` of framework ``f``, seed ``s`` (one file)."""
    obj = read_json(path, RERUN_ABLATION)
    if (obj.get("framework", f), obj.get("seed", s)) != (f, s):
        raise PipelineError(
            f"{path} records framework {obj.get('framework')!r}, seed {obj.get('seed')}, not {f!r}, seed {s}"
        )
    runs = obj.get("runs")
    if not isinstance(runs, dict):
        raise PipelineError(f"{path} lacks its runs; {RERUN_ABLATION}")
    outer = {k: obj[k] for k in ("device", "device_name", "epochs") if k in obj}
    results = {}
    for rid in run_ids:
        if not isinstance(runs.get(rid), dict):
            raise PipelineError(
                f"{path} has no run {rid!r} (it has {', '.join(map(repr, runs)) or 'none'}); " + RERUN_ABLATION
            )
        run = runs[rid]
        differing = _differing(run.get("settings"), factors.settings(params, f, rid))
        if differing:
            raise PipelineError(
                f"{path}: run {rid!r} was trained with other settings than params.yaml's ablation "
                f"gives it (differing: {', '.join(differing)}); the run is stale, {RERUN_ABLATION}"
            )
        results[rid] = _result(outer | run, path)
    return results


def _main_result(params: dict, files: dict[str, Path]) -> dict:
    """The numbers of a main pipeline's run (the last step), from its metrics.json and run.json."""
    metrics, run = read_json(files["metrics"], RERUN_MAIN), read_json(files["run"], RERUN_MAIN)
    recorded = (run.get("params") or {}) if isinstance(run.get("params"), dict) else {}
    expected = json.loads(json.dumps({"model": params["model"], "train": params["train"]}))
    if recorded.get("model") != expected["model"] or recorded.get("train") != expected["train"]:
        raise PipelineError(
            f"{files['run']} was trained with other model / train params than params.yaml's; "
            f"the run is stale, {RERUN_MAIN}"
        )
    record = {k: run.get(k) for k in ("n_parameters", "seconds_per_epoch", "train_seconds", "epochs")}
    record |= {k: run[k] for k in ("device", "device_name") if k in run}
    record |= {k: metrics.get(k) for k in ("n_test", "n_correct", "test_accuracy") if k in metrics}
    return _result(record, files["metrics"])


# ----------------------------------------------------------------------------------------------
# The numbers


def _clean(values) -> list[float]:
    return [round(float(v), _DECIMALS) + 0.0 for v in values]  # + 0.0: no negative zero


def summary(values, what: str = "seed") -> dict:
    """stats.summarize over seeds, with a note that speaks of seeds and a 95 % prediction interval.

    The prediction interval (stats.prediction_interval) is where one more seed's value would
    fall 95 % of the time: what a single published run is compared with.
    """
    values = _clean(values)
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


def _reported(results: dict, params: dict, f: str, s: int, step: str) -> tuple[float, float, str]:
    """(reported %, exact %, run id) of framework ``f``, seed ``s`` at ``step``."""
    rid = factors.run_id(params, f, step)
    r = results[(f, s, rid)]
    how = factors.settings(params, f, step)["accuracy"]
    return factors.reported_accuracy(r["n_correct"], r["n_test"], how), 100 * r["n_correct"] / r["n_test"], rid


def _within(low: float, high: float, lo: float | None, hi: float | None, open_high: bool) -> str | None:
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
        "in_range": _within(low, high, ours["min"], ours["max"], open_high),
        "in_prediction_interval": _within(low, high, ours["pi_low"], ours["pi_high"], open_high),
    }


def small_n_note(n: int) -> str:
    """What n seeds can and cannot say about a single published run, in words."""
    if n < 2:
        return (
            f"With {n} seed there is no seed-to-seed spread to compare the article's single runs with: "
            "add seeds to ablation.seeds."
        )
    t = stats.t_quantile(n - 1)
    cover = (n - 1) / (n + 1)
    return (
        f"With n = {n} seeds: the range [min, max] of n runs holds one more run only with probability "
        f"(n - 1) / (n + 1) = {100 * cover:.0f} %, so an article value outside it is weak evidence on its own; "
        f"the 95 % prediction interval for one run (mean ± t · sd · sqrt(1 + 1/n), t(0.975, {n - 1}) = {t:.2f}) "
        "is the fairer yardstick, and with few seeds it is wide."
    )


def analyze(params: dict, results: dict) -> dict:
    """Every number of the ablation report, as plain JSON-ready data (percent and points)."""
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
    analysis["conclusion"] = conclusion(analysis)
    analysis["summary"] = summary_sentences(analysis)
    return analysis


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
    entry["what_changed"] = what_changed(entry)
    return entry


def _step_accuracy(params: dict, results: dict, f: str, step: str, entry: dict) -> dict:
    """Framework ``f``'s accuracy at ``step`` over the ablation's seeds: as its code reports it, and exact."""
    seeds = params["ablation"]["seeds"]
    per = [_reported(results, params, f, s, step) for s in seeds]
    rid = entry["run_ids"][f]
    return {
        "how": entry["settings"][f]["accuracy"],
        "reported": summary([p[0] for p in per]),
        "exact": summary([p[1] for p in per]),
        "n_parameters": _one_or_all(results[(f, s, rid)]["n_parameters"] for s in seeds),
        "seconds_per_epoch_mean": _mean(results[(f, s, rid)]["seconds_per_epoch"] for s in seeds),
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

    Rounded like our gaps, so that the article's printed gap and an equal one of ours compare equal.
    """
    gap = article.gap()
    low, high = _clean([gap["low"], gap["high"]])
    return {"printed": _clean([article.printed_gap()])[0], "low": low, "high": high}


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
    out["note"] = small_n_note(n_seeds)
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


def what_changed(entry: dict) -> str:
    """Which frameworks a step retrains, which it only reports differently, which it leaves alone."""
    if entry["index"] == 0:
        return "both (the article's setup)"
    names = FRAMEWORK_NAMES
    retrained = entry["retrained"]
    reporting = [f for f in entry["reporting_changed"] if f not in retrained]
    no_op = entry["no_op"]
    untouched = [f for f in PAIR if f not in retrained and f not in reporting and f not in no_op]
    already = f" ({' and '.join(names[f] for f in untouched)} already controlled)" if untouched else ""
    if retrained:
        text = " and ".join(names[f] for f in retrained)
        if reporting:
            return f"{text}; reporting only: {' and '.join(names[f] for f in reporting)}"
        return text + already
    if reporting:
        return f"none: reporting only ({' and '.join(names[f] for f in reporting)})"
    if no_op:
        return f"none: {' and '.join(names[f] for f in no_op)} trains bit for bit as before{already}"
    return "none: both already controlled"


def _one_or_all(values):
    values = list(values)
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else values


def _numbers(values) -> list[float]:
    """The values that are numbers (a run record may hold null or nothing)."""
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _mean(values) -> float | None:
    x = _numbers(values)
    return float(np.mean(x)) if x else None


def _sum(values) -> float | None:
    x = _numbers(values)
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


# ----------------------------------------------------------------------------------------------
# Words from the numbers


def _pts(x: float) -> str:
    return f"{x:+.2f}"


def ci_text(s: dict) -> str:
    """The 95 % CI as "95 % CI a to b", or why there is none."""
    if s["ci_low"] is None:
        return "no CI with one seed" if s["n"] == 1 else f"no CI: {s['note']}"
    return f"95 % CI {_pts(s['ci_low'])} to {_pts(s['ci_high'])}"


def _excludes_zero(s: dict) -> bool | None:
    if s["ci_low"] is None:
        return None
    return s["ci_low"] > 0 or s["ci_high"] < 0


def _seeds(a: dict) -> str:
    return stats.plural(a["n_seeds"], "seed")


def _largest_step(a: dict) -> dict | None:
    """The step that moved the gap most (None when the article's setup is the only step)."""
    return next((e for e in a["steps"] if e["step"] == a["largest_step"]), None)


def conclusion(a: dict) -> list[str]:
    """Two or three sentences for ablation.md, each derived from the numbers."""
    pt, tf = PAIR
    rep, total = a["reproduction"], a["total"]
    first_gap, last_gap = total["article_gap"], total["controlled_gap"]
    where = rep["gap"]["reported_vs_article"]["in_prediction_interval"]
    where_words = {
        "inside": "inside the 95 % prediction interval for a single run of that setup",
        "overlaps": "within the 95 % prediction interval for a single run of that setup",
        "above": "above the 95 % prediction interval for a single run of that setup",
        "below": "below the 95 % prediction interval for a single run of that setup",
        None: "not comparable with a single run's spread here (too few seeds)",
    }[where]
    lines = [
        f"Reproduced over {_seeds(a)}, the article's setup gives {a['frameworks'][tf]} "
        f"{rep[tf]['reported']['mean']:.2f} % and {a['frameworks'][pt]} {rep[pt]['reported']['mean']:.2f} % "
        f"as its code reports them, a gap of {_pts(first_gap['mean'])} points ({ci_text(first_gap)}); the article's "
        f"{_pts(rep['gap']['article_printed'])} is {where_words}."
    ]
    step = _largest_step(a)
    if step is not None:
        ch = step["change"]
        zero = _excludes_zero(ch)
        tail = "" if zero is None else (", which excludes zero" if zero else ", which includes zero")
        significant = [e["step"] for e in a["steps"][1:] if _excludes_zero(e["change"])]
        lines.append(
            f"The step that moved the gap most is {step['label']}: {_pts(ch['mean'])} points ({ci_text(ch)}{tail}); "
            + (
                f"the steps whose 95 % CI excludes zero are {', '.join(significant)}."
                if significant
                else "no step's 95 % CI excludes zero."
            )
        )
    lines.extend(framework_effects(a))
    lines.append(
        f"With every factor controlled the gap is {_pts(last_gap['mean'])} points ({ci_text(last_gap)}), "
        f"a change of {_pts(total['change']['mean'])} points from the article's setup ({ci_text(total['change'])})."
    )
    return lines


def framework_effects(a: dict) -> list[str]:
    """Per framework, the steps that changed its own (exact) accuracy beyond their 95 % CI."""
    lines = []
    for f in PAIR:
        moved = [
            f"{e['label']} ({_pts(e['framework_change'][f]['mean'])} points, {ci_text(e['framework_change'][f])})"
            for e in a["steps"][1:]
            if f in e["retrained"] and _excludes_zero(e["framework_change"][f])
        ]
        lines.append(
            f"{a['frameworks'][f]}'s own accuracy: "
            + (
                f"the steps whose 95 % CI excludes zero are {'; '.join(moved)}."
                if moved
                else "no step changed it beyond its 95 % CI."
            )
        )
    return lines


def summary_sentences(a: dict) -> list[str]:
    """Exactly two sentences for the main report's section "The article's gap, explained"."""
    first_gap, last_gap = a["total"]["article_gap"], a["total"]["controlled_gap"]
    step = _largest_step(a)
    moved = (
        f", and the step that moved it most is {step['label']}, by {_pts(step['change']['mean'])} points "
        f"({ci_text(step['change'])})"
        if step is not None
        else ""
    )
    return [
        f"Reproducing the article's setup over {_seeds(a)} gives a TensorFlow-minus-PyTorch gap "
        f"of {_pts(first_gap['mean'])} points as its code reports it ({ci_text(first_gap)}; the article: "
        f"{_pts(a['reproduction']['gap']['article_printed'])}){moved}.",
        f"Moving the factors one at a time to this protocol leaves a gap of {_pts(last_gap['mean'])} points "
        f"({ci_text(last_gap)}) on the same {_seeds(a)}.",
    ]


# ----------------------------------------------------------------------------------------------
# Figure, Markdown, JSON


def figure_data(a: dict) -> pd.DataFrame:
    """Tidy per-seed rows: step index, step, seed, framework reported accuracies and the gap."""
    rows = []
    for e in a["steps"]:
        for i, s in enumerate(a["seeds"]):
            rows.append(
                {
                    "index": e["index"],
                    "step": e["step"],
                    "seed": s,
                    "gap": e["gap"]["values"][i],
                    **{f: e["accuracy"][f]["reported"]["values"][i] for f in PAIR},
                }
            )
    return pd.DataFrame(rows)


def render_markdown(a: dict, figure_src: str) -> str:
    template = environment().get_template("ablation.md.j2")
    return template.render(
        a=a, pair=PAIR, truncation=article.TRUNCATED_ACCURACY, figure=image_link("ablation", figure_src)
    )


def build(params: dict, runs_dir: Path, main_runs_dir: Path, out_md: Path, out_json: Path, figure: Path) -> dict:
    """Run the whole ablation report step; returns what it writes to ``out_json``."""
    results = load_results(params, Path(runs_dir), Path(main_runs_dir))
    a = analyze(params, results)
    figures.ablation_gap(figure_data(a), a, Path(figure))
    rel_figure = Path(os.path.relpath(Path(figure), Path(out_md).parent)).as_posix()
    # Where the main report finds the Markdown and the figure, relative to this JSON file.
    a["markdown"] = Path(os.path.relpath(Path(out_md), Path(out_json).parent)).as_posix()
    a["figure"] = Path(os.path.relpath(Path(figure), Path(out_json).parent)).as_posix()
    write_text(out_md, render_markdown(a, rel_figure))
    write_json(out_json, a)
    for line in a["conclusion"]:
        log.info("%s", line)
    return a
