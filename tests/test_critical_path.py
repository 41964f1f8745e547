"""tools/critical_path.py: the schedule of the pipeline's jobs on N slots, and its reading of the records."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("critical_path", REPO / "tools" / "critical_path.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_an_evaluate_waits_for_its_train_and_jobs_share_the_slots():
    train = {("torch", 0): 10.0, ("torch", 1): 10.0}
    evaluate = {("torch", 0): 1.0, ("torch", 1): 1.0}
    ablation = [(20.0, "a"), (5.0, "b")]
    # One slot: everything in a row. Two: the 20 s job beside both trains (0-20), then the 5 s job
    # beside both evaluates (20-25).
    assert tool.schedule(1, train, evaluate, ablation) == pytest.approx(47.0)
    assert tool.schedule(2, train, evaluate, ablation) == pytest.approx(25.0)
    # Enough slots: the longest chain, train then its evaluate, or the longest job.
    assert tool.schedule(10, train, evaluate, ablation) == pytest.approx(20.0)


# What tools/wall_times.py writes of the ablation's jobs (reports/wall_times.json), one per run.
WALL_TIMES = {
    "jobs": [
        {"job": "train", "framework": "torch", "seed": 0, "wall_seconds": 300.0},
        {"job": "ablation_train", "framework": "torch", "seed": 0, "run": "article", "wall_seconds": 30.0},
        {"job": "ablation_train", "framework": "torch", "seed": 0, "run": "init", "wall_seconds": 33.0},
        {"job": "ablation_train", "framework": "torch", "seed": 1, "run": "article", "wall_seconds": 31.0},
        {"job": "ablation_train", "framework": "torch", "seed": 1, "run": "init", "wall_seconds": 32.0},
        {"job": "ablation_train", "framework": "tensorflow", "seed": 0, "run": "article", "wall_seconds": 40.0},
        {"job": "ablation_train", "framework": "tensorflow", "seed": 0, "run": "eps", "wall_seconds": 50.0},
    ]
}


def test_each_ablation_run_is_a_job_with_its_own_time():
    assert sorted(tool.ablation_jobs(WALL_TIMES, per_job=False)) == [
        (30.0, "torch seed 0 article"),
        (31.0, "torch seed 1 article"),
        (32.0, "torch seed 1 init"),
        (33.0, "torch seed 0 init"),
        (40.0, "tensorflow seed 0 article"),
        (50.0, "tensorflow seed 0 eps"),
    ]


def test_per_job_sums_the_runs_of_each_framework_and_seed():
    """The layout before one job per run: a framework's runs in a row, one job per seed."""
    assert sorted(tool.ablation_jobs(WALL_TIMES, per_job=True)) == [
        (63.0, "torch seed 0 (article, init)"),
        (63.0, "torch seed 1 (article, init)"),
        (90.0, "tensorflow seed 0 (article, eps)"),
    ]
