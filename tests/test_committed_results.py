"""The committed baseline hangs together: the committed reports are what the committed run records
give, and dvc.lock records exactly the committed report files.

A fresh clone has no data/ (models, predictions, the prepared cache), so the report step itself
cannot rerun here. Instead:
- reports/metrics.json's accuracies, every pair's difference, t-test and equivalence test (raw and
  Holm-adjusted over the pairs) and the timings are recomputed by hand (numpy and scipy.stats.t,
  no project code) from the runs' metrics.json and run.json, and its keys are those the report step
  writes today;
- the ablation's report, which needs only run records, is rebuilt and must equal the committed one;
- every report file dvc.lock lists as an output has the hash dvc.lock records for it.
Numbers are compared to 1e-9 percent points: the same float64 formulas in another order differ
by a few ulps (about 1e-14 at 90 %), never by that much.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, t_half
from report_helpers import flatten, summary_keys
from scipy import stats as sps

from lenet_compare.ablation import report as ablation_report
from lenet_compare.ablation.factors import runs_to_train
from lenet_compare.core import layout
from lenet_compare.core.article import PAIR
from lenet_compare.report.analysis import framework_pairs
from lenet_compare.report.common import pair_key

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
METRICS = json.loads((REPO / "reports/metrics.json").read_text())
TOL = 1e-9


def accuracies(framework: str) -> np.ndarray:
    """Test accuracy in percent per seed, in params.yaml's seed order."""
    return np.array(
        [
            100 * json.loads((REPO / layout.run_file("metrics", framework, s)).read_text())["test_accuracy"]
            for s in PARAMS["seeds"]
        ]
    )


def mean_ci(x: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """Mean, sample std, and the two-sided t confidence interval of the mean, written out."""
    mean, std, half = float(x.mean()), float(x.std(ddof=1)), t_half(x, level=level)
    return mean, std, mean - half, mean + half


def test_the_baseline_ran_every_seed_of_params_yaml():
    assert METRICS["n_seeds"] == len(PARAMS["seeds"]) == 5
    assert set(METRICS["accuracy"]) == set(PARAMS["frameworks"])


def test_the_metrics_have_the_layout_the_report_step_writes():
    """`dvc metrics diff` lines up with older commits: the committed keys are the report step's, in its order."""
    further = [pair_key(a, b) for a, b in framework_pairs(list(PARAMS["frameworks"]))[1:]]
    assert list(flatten(METRICS)) == summary_keys(PARAMS["frameworks"], further)


@pytest.mark.parametrize("framework", PARAMS["frameworks"])
def test_every_run_trained_the_one_spec(framework):
    """Every framework's runs are the spec's 61,706-parameter LeNet-5 (the article's network,
    params.yaml's model), one per seed."""
    for seed in PARAMS["seeds"]:
        run = json.loads((REPO / layout.run_file("run", framework, seed)).read_text())
        assert (run["framework"], run["seed"], run["n_parameters"]) == (framework, seed, 61706)


@pytest.mark.parametrize("framework", PARAMS["frameworks"])
def test_each_frameworks_accuracy_is_that_of_its_runs(framework):
    mean, std, low, high = mean_ci(accuracies(framework), 0.95)
    m = METRICS["accuracy"][framework]
    assert m["mean"] == pytest.approx(mean, abs=TOL)
    assert m["std"] == pytest.approx(std, abs=TOL)
    assert (m["ci95_low"], m["ci95_high"]) == pytest.approx((low, high), abs=TOL)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out: the k-th smallest of m p-values times (m - k + 1),
    never below the adjusted p before it, at most 1."""
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(sorted(range(len(pvalues)), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def committed_pairs() -> list[tuple[str, str, dict, dict]]:
    """Every pair (a, b) with its committed b - a test and TOST: the article's pair first (``gap``,
    ``equivalence``), then ``pairs.{b}_minus_{a}`` in params.yaml's order."""
    frameworks = PARAMS["frameworks"]
    pairs = [PAIR] + [(a, b) for i, a in enumerate(frameworks) for b in frameworks[i + 1 :] if {a, b} != set(PAIR)]
    further = METRICS.get("pairs", {})
    assert list(further) == [f"{b}_minus_{a}" for a, b in pairs[1:]]
    out = [(*PAIR, METRICS["gap"], METRICS["equivalence"])]
    return out + [(a, b, further[f"{b}_minus_{a}"], further[f"{b}_minus_{a}"]["equivalence"]) for a, b in pairs[1:]]


def test_every_pairs_tests_are_those_of_the_runs():
    """Each pair's mean difference, CIs, paired t-test and TOST at the margin, then both families
    of p-values Holm-adjusted across the pairs; the verdict is the adjusted TOST p's."""
    margin = PARAMS["report"]["equivalence_margin"]
    pairs = committed_pairs()
    assert len(pairs) == len(PARAMS["frameworks"]) * (len(PARAMS["frameworks"]) - 1) // 2
    t_p, tost_p = [], []
    for a, b, gap, eq in pairs:
        d = accuracies(b) - accuracies(a)  # paired by seed, in points
        n = d.size
        mean, std, low, high = mean_ci(d, 0.95)
        se = std / math.sqrt(n)
        assert gap["mean"] == pytest.approx(mean, abs=TOL), (a, b)
        assert (gap["ci95_low"], gap["ci95_high"]) == pytest.approx((low, high), abs=TOL), (a, b)
        t_p.append(2 * sps.t.sf(abs(mean / se), n - 1))
        assert gap["p"] == pytest.approx(t_p[-1], rel=1e-9), (a, b)

        # The TOST at alpha = 0.05: both one-sided tests against -m and +m; its p is the larger.
        assert eq["margin"] == margin
        _, _, low90, high90 = mean_ci(d, 0.90)
        assert (eq["ci90_low"], eq["ci90_high"]) == pytest.approx((low90, high90), abs=TOL), (a, b)
        tost_p.append(max(sps.t.sf((mean + margin) / se, n - 1), sps.t.cdf((mean - margin) / se, n - 1)))
        assert eq["p"] == pytest.approx(tost_p[-1], rel=1e-9), (a, b)
    for (a, b, gap, eq), t_adjusted, tost_adjusted in zip(pairs, holm(t_p), holm(tost_p), strict=True):
        assert gap["p_holm"] == pytest.approx(t_adjusted, rel=1e-9), (a, b)
        assert eq["p_holm"] == pytest.approx(tost_adjusted, rel=1e-9), (a, b)
        assert eq["equivalent"] is bool(tost_adjusted < 0.05), (a, b)


@pytest.mark.parametrize("framework", PARAMS["frameworks"])
def test_the_timings_are_those_of_the_runs(framework):
    def mean_of(file: str, key: str) -> float:
        return float(
            np.mean(
                [json.loads((REPO / layout.run_file(file, framework, s)).read_text())[key] for s in PARAMS["seeds"]]
            )
        )

    timing = METRICS["timing"][framework]
    assert timing["seconds_per_epoch"] == pytest.approx(mean_of("run", "seconds_per_epoch"), rel=1e-12)
    assert timing["inference_images_per_second"] == pytest.approx(
        mean_of("metrics", "inference_images_per_second"), rel=1e-12
    )


def test_the_report_states_the_committed_verdict():
    text = (REPO / "reports/report.md").read_text()
    margin = PARAMS["report"]["equivalence_margin"]
    if METRICS["equivalence"]["equivalent"]:
        assert f"equivalent within ±{margin:.1f} points" in text
    else:
        assert f"equivalence within ±{margin:.1f} points not shown" in text


def test_the_ablation_report_is_rebuilt_from_the_committed_runs(tmp_path):
    out = tmp_path / "reports"
    ablation_report.build(
        PARAMS,
        REPO / "reports/ablation/runs",
        REPO / "reports/runs",
        out / "ablation.md",
        out / "ablation.json",
        out / "figures/ablation.png",
    )
    assert (out / "ablation.md").read_text() == (REPO / "reports/ablation.md").read_text()
    assert json.loads((out / "ablation.json").read_text()) == json.loads((REPO / "reports/ablation.json").read_text())
    assert len(PARAMS["ablation"]["seeds"]) == 5


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# .dvcignore: Snakemake's marker in directory() outputs, which DVC does not count.
DVCIGNORED = {".snakemake_timestamp"}


def dir_md5(folder: Path) -> str:
    """DVC 3's hash of a folder: the md5 of the JSON list of its files' relative paths and md5s."""
    entries = sorted(
        (
            {"md5": md5(p), "relpath": p.relative_to(folder).as_posix()}
            for p in folder.rglob("*")
            if p.is_file() and p.name not in DVCIGNORED
        ),
        key=lambda e: tuple(e["relpath"].split("/")),  # DVC sorts by path parts
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def lock_outputs() -> list[tuple[str, str, dict]]:
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    return [(stage, out["path"], out) for stage, body in lock["stages"].items() for out in body.get("outs", [])]


def test_dvc_lock_records_exactly_the_committed_reports():
    """Every output under reports/ that dvc.lock lists is committed with the hash it records:
    dvc.lock and reports/ come from one run (what `dvc status` checks, without data/)."""
    checked = set()
    for stage, path, out in lock_outputs():
        if not path.startswith("reports/"):
            continue
        target = REPO / path
        assert target.exists(), f"{stage}: {path} is in dvc.lock but not committed"
        actual = dir_md5(target) if target.is_dir() else md5(target)
        assert actual == out["md5"], f"{stage}: {path} differs from what dvc.lock records; run dvc commit or repro"
        checked.add(path)
    # Among them every run's files and the reports (a dvc.lock that lost stages would pass the loop).
    runs = [layout.run_file(key, f, s).as_posix() for f in PARAMS["frameworks"] for s in PARAMS["seeds"]
            for key in ("run", "history", "metrics")]  # fmt: skip
    runs += [
        f"{layout.run_file('live', f, s).as_posix()}/metrics.json"
        for f in PARAMS["frameworks"]
        for s in PARAMS["seeds"]
    ]
    ablation = [
        layout.ablation_run_file(f, s, run).as_posix()
        for f in PAIR
        for s in PARAMS["ablation"]["seeds"]
        for run in runs_to_train(PARAMS, f)
    ]
    assert {*runs, *ablation, "reports/metrics.json", "reports/report.md", "reports/ablation.md"} <= checked


def test_dvc_lock_has_exactly_the_stages_of_dvc_yaml():
    """dvc.lock records every stage dvc.yaml expands to (matrix and foreach included) and no other:
    `dvc commit` adds a renamed stage's entry but keeps the old one, which nothing would then check."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        stages = {s.addressing for s in repo.index.stages if s.path_in_repo == "dvc.yaml"}
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    assert set(lock["stages"]) == stages


def test_every_ablation_run_has_its_record_and_live_folder():
    """Every ablation run the factors name has its per-run record and live folder."""
    for f in PAIR:
        for s in PARAMS["ablation"]["seeds"]:
            for run in runs_to_train(PARAMS, f):
                assert (REPO / layout.ablation_run_file(f, s, run)).is_file()
                assert (REPO / layout.ABLATION_LIVE.format(framework=f, seed=s, run=run) / "metrics.json").is_file()
