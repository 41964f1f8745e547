"""The committed baseline hangs together: the committed reports are what the committed run records
give, and dvc.lock records exactly the committed report files.

A fresh clone has no data/ (models, predictions, the prepared cache), so the report step itself
cannot rerun here. Instead:
- reports/metrics.json's accuracies, gap, equivalence test and timings are recomputed by hand
  (numpy and scipy.stats.t, no project code) from the runs' metrics.json and run.json;
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
from scipy import stats as sps

from lenet_compare.ablation import report as ablation_report

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
METRICS = json.loads((REPO / "reports/metrics.json").read_text())
TOL = 1e-9


def run_file(framework: str, seed: int, name: str) -> str:
    """A main run's file, relative to the repository (the layout dvc.lock lists)."""
    return f"reports/runs/{framework}/seed{seed}/{name}"


def accuracies(framework: str) -> np.ndarray:
    """Test accuracy in percent per seed, in params.yaml's seed order."""
    return np.array(
        [
            100 * json.loads((REPO / run_file(framework, s, "metrics.json")).read_text())["test_accuracy"]
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


@pytest.mark.parametrize("framework", PARAMS["frameworks"])
def test_each_frameworks_accuracy_is_that_of_its_runs(framework):
    mean, std, low, high = mean_ci(accuracies(framework), 0.95)
    m = METRICS["accuracy"][framework]
    assert m["mean"] == pytest.approx(mean, abs=TOL)
    assert m["std"] == pytest.approx(std, abs=TOL)
    assert (m["ci95_low"], m["ci95_high"]) == pytest.approx((low, high), abs=TOL)


def test_the_gap_and_the_equivalence_verdict_are_those_of_the_runs():
    d = accuracies("tensorflow") - accuracies("torch")  # TF - PT, paired by seed, in points
    n = d.size
    mean, std, low, high = mean_ci(d, 0.95)
    se = std / math.sqrt(n)
    gap = METRICS["gap"]
    assert gap["mean"] == pytest.approx(mean, abs=TOL)
    assert (gap["ci95_low"], gap["ci95_high"]) == pytest.approx((low, high), abs=TOL)
    assert gap["p"] == pytest.approx(2 * sps.t.sf(abs(mean / se), n - 1), rel=1e-9)

    # The TOST at alpha = 0.05: both one-sided tests against -m and +m; its p is the larger.
    margin = PARAMS["report"]["equivalence_margin"]
    eq = METRICS["equivalence"]
    assert eq["margin"] == margin
    _, _, low90, high90 = mean_ci(d, 0.90)
    assert (eq["ci90_low"], eq["ci90_high"]) == pytest.approx((low90, high90), abs=TOL)
    p_tost = max(sps.t.sf((mean + margin) / se, n - 1), sps.t.cdf((mean - margin) / se, n - 1))
    assert eq["p"] == pytest.approx(p_tost, rel=1e-9)
    assert eq["equivalent"] is bool(-margin < low90 and high90 < margin)


@pytest.mark.parametrize("framework", PARAMS["frameworks"])
def test_the_timings_are_those_of_the_runs(framework):
    def mean_of(file: str, key: str) -> float:
        return float(
            np.mean([json.loads((REPO / run_file(framework, s, file)).read_text())[key] for s in PARAMS["seeds"]])
        )

    timing = METRICS["timing"][framework]
    assert timing["seconds_per_epoch"] == pytest.approx(mean_of("run.json", "seconds_per_epoch"), rel=1e-12)
    assert timing["inference_images_per_second"] == pytest.approx(
        mean_of("metrics.json", "inference_images_per_second"), rel=1e-12
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
    runs = [run_file(f, s, name) for f in PARAMS["frameworks"] for s in PARAMS["seeds"]
            for name in ("run.json", "history.csv", "metrics.json", "live/metrics.json")]  # fmt: skip
    ablation = [
        ablation_report.ablation_file(Path("reports/ablation/runs"), f, s).as_posix()
        for f in PARAMS["frameworks"]
        for s in PARAMS["ablation"]["seeds"]
    ]
    assert {*runs, *ablation, "reports/metrics.json", "reports/report.md", "reports/ablation.md"} <= checked
