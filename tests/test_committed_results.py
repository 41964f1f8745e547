"""The committed baseline hangs together: the committed reports are what the committed run records
give, and dvc.lock records exactly the committed report files.

A fresh clone has no data/ (models, predictions, the prepared cache), so the report step itself
cannot rerun here. Instead:
- reports/metrics.json's accuracies, gap, equivalence test and timings are recomputed by hand
  (numpy and scipy.stats.t, no project code) from the runs' metrics.json and run.json, and its keys
  are those the report step writes today (the Holm-adjusted ``p_holm`` keys excepted: they come with
  the next baseline);
- the ablation's report, which needs only run records, is rebuilt and must equal the committed one;
- every report file dvc.lock lists as an output has the hash dvc.lock records for it.
Numbers are compared to 1e-9 percent points: the same float64 formulas in another order differ
by a few ulps (about 1e-14 at 90 %), never by that much.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
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
    """`dvc metrics diff` lines up with older commits: every committed key is one the report step writes
    today, in its order. Only the Holm-adjusted p-values (``p_holm``, added with the comparison of any
    number of frameworks) may be missing: they come with the next baseline."""
    further = [pair_key(a, b) for a, b in framework_pairs(list(PARAMS["frameworks"]))[1:]]
    expected = summary_keys(PARAMS["frameworks"], further)
    committed = list(flatten(METRICS))
    assert committed == [key for key in expected if key in committed]
    assert all(key.endswith(".p_holm") for key in expected if key not in committed)


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
    # One pair (two frameworks): Holm's adjustment leaves p as it is (absent before the next baseline).
    assert gap.get("p_holm", gap["p"]) == gap["p"]

    # The TOST at alpha = 0.05: both one-sided tests against -m and +m; its p is the larger.
    margin = PARAMS["report"]["equivalence_margin"]
    eq = METRICS["equivalence"]
    assert eq["margin"] == margin
    _, _, low90, high90 = mean_ci(d, 0.90)
    assert (eq["ci90_low"], eq["ci90_high"]) == pytest.approx((low90, high90), abs=TOL)
    p_tost = max(sps.t.sf((mean + margin) / se, n - 1), sps.t.cdf((mean - margin) / se, n - 1))
    assert eq["p"] == pytest.approx(p_tost, rel=1e-9)
    assert eq.get("p_holm", eq["p"]) == eq["p"]
    assert eq["equivalent"] is bool(-margin < low90 and high90 < margin)


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


# The baseline's ablation jobs each trained several runs, into one record and one live folder per
# (framework, seed); tools/split_ablation_records.py moved them to today's layout, one record and
# one live folder per run, changing no value. dvc.lock still describes those jobs (stage names
# like ablation_train@torch-0, which dvc.yaml no longer has) until the next baseline. Their
# records and plot folders are checked by putting them back together from today's files.
SUPERSEDED = re.compile(r"ablation_train@(?P<framework>[a-z]+)-(?P<seed>\d+)")


def joined_ablation_record(framework: str, seed: int) -> bytes:
    """The old per-job record, rebuilt from the per-run records the split tool wrote."""
    records = [
        json.loads(p.read_text()) for p in sorted(layout.ablation_run_file(framework, seed, "x").parent.glob("*.json"))
    ]
    first = records[0]
    by_run = {r["run"]: r for r in records}
    job = ("framework", "framework_version", "python_version", "seed", "device", "device_name", "epochs",
           "batch_size", "n_train", "steps")  # fmt: skip
    old = {key: first[key] for key in job} | {"wall_seconds": first["job_wall_seconds"], "runs": {}}
    for run in first["job_runs"]:
        record = by_run[run]
        assert record["job_wall_seconds"] == old["wall_seconds"] and record["job_runs"] == first["job_runs"]
        skip = {*job, "run", "wall_seconds", "job_wall_seconds", "job_runs"}
        old["runs"][run] = {k: v for k, v in record.items() if k not in skip}
    return (json.dumps(old, indent=2) + "\n").encode()


def joined_live_plots_md5(framework: str, seed: int) -> str:
    """DVC's hash of the old live plots folder (plots/metrics/{run}/...), from today's per-run folders."""
    root = REPO / layout.ABLATION_LIVE.format(framework=framework, seed=seed, run="x")
    entries = sorted(
        (
            {"md5": md5(p), "relpath": f"{run.name}/{p.relative_to(run / 'plots' / 'metrics').as_posix()}"}
            for run in root.parent.iterdir()
            for p in (run / "plots" / "metrics").rglob("*")
            if p.is_file()
        ),
        key=lambda e: tuple(e["relpath"].split("/")),
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def test_dvc_lock_records_exactly_the_committed_reports():
    """Every output under reports/ that dvc.lock lists is committed with the hash it records:
    dvc.lock and reports/ come from one run (what `dvc status` checks, without data/)."""
    checked = set()
    for stage, path, out in lock_outputs():
        if not path.startswith("reports/"):
            continue
        if old := SUPERSEDED.fullmatch(stage):
            f, s = old["framework"], int(old["seed"])
            if path.endswith(f"seed{s}.json"):
                assert hashlib.md5(joined_ablation_record(f, s)).hexdigest() == out["md5"], path
            elif path.endswith("plots/metrics"):
                assert joined_live_plots_md5(f, s) == out["md5"], path
            # The old live metrics.json (each run's last values under its run id) is not rebuilt:
            # its values are the last lines of the plots checked here.
            checked.add(path)
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
        f"reports/ablation/runs/{f}/seed{s}.json" for f in PARAMS["frameworks"] for s in PARAMS["ablation"]["seeds"]
    ]
    assert {*runs, *ablation, "reports/metrics.json", "reports/report.md", "reports/ablation.md"} <= checked


def test_the_split_ablation_records_are_todays_layout():
    """Every ablation run the factors name has its per-run record and live folder."""
    for f in PAIR:
        for s in PARAMS["ablation"]["seeds"]:
            for run in runs_to_train(PARAMS, f):
                assert (REPO / layout.ablation_run_file(f, s, run)).is_file()
                assert (REPO / layout.ABLATION_LIVE.format(framework=f, seed=s, run=run) / "metrics.json").is_file()
